//! Logins for both doors: the policy ([`LoginSettings`]), the Argon2 work it bounds
//! ([`PasswordSlots`]: a fixed number of password computations at once, each in a memory buffer
//! that is kept and reused), and the limiter of failed logins per address and per user
//! ([`LoginLimiter`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
#[cfg(test)]
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::scram::{ScramCredential, ScramMechanism};
use super::users::PasswordSecrets;
use super::BrokerError;
use crate::server::limits::address_key;

/// How logins are bounded (`[auth]` in `configs/server.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSettings {
    /// Password verifications (Argon2, about 19 MiB each) that run at once; the rest wait.
    pub password_verifications: usize,
    /// Failed logins per address, and per user, within `failed_login_window` before further
    /// attempts are refused for `failed_login_lockout`.
    pub max_failed_logins: u32,
    pub failed_login_window: Duration,
    pub failed_login_lockout: Duration,
    /// A password change ends the user's other sessions and revokes their tokens.
    pub end_sessions_on_password_change: bool,
    /// PBKDF2 iterations of the SCRAM credentials derived when a password is set.
    pub scram_iterations: u32,
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            password_verifications: 2,
            max_failed_logins: 5,
            failed_login_window: Duration::from_secs(60),
            failed_login_lockout: Duration::from_secs(60),
            end_sessions_on_password_change: true,
            scram_iterations: 4096,
        }
    }
}

// ----- Argon2 in reused memory -----

/// Largest Argon2 memory a stored hash may ask for (256 MiB, in 1 KiB blocks): a damaged users
/// document cannot make the server allocate without bound.
const MAX_BLOCKS: usize = 256 * 1024;

fn hash_error(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Internal(format!("password hash: {e}"))
}

/// The PHC string of a new hash's parameters (Argon2id v19, the crate's defaults: 19 MiB, two
/// passes, one lane), with `salt` and, when known, the output.
fn new_hash_phc<'a>(
    salt: &'a SaltString,
    output: Option<Output>,
) -> Result<PasswordHash<'a>, BrokerError> {
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&Params::DEFAULT).map_err(hash_error)?,
        salt: Some(salt.as_salt()),
        hash: output,
    })
}

/// Computes Argon2 of `password` with the algorithm, version, parameters and salt of `phc`, in
/// `memory` (grown to the parameters' size on first use, then reused as is).
fn compute(
    password: &[u8],
    phc: &PasswordHash<'_>,
    memory: &mut Vec<Block>,
) -> Result<Output, BrokerError> {
    let algorithm = Algorithm::try_from(phc.algorithm).map_err(hash_error)?;
    let version = phc
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(hash_error)?
        .unwrap_or_default();
    let params = Params::try_from(phc).map_err(hash_error)?;
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        return Err(hash_error(format!("{blocks} KiB of memory asked for")));
    }
    let mut salt = [0u8; 64];
    let salt = phc
        .salt
        .ok_or_else(|| hash_error("no salt"))?
        .decode_b64(&mut salt)
        .map_err(hash_error)?;
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    if memory.len() < blocks {
        memory.resize(blocks, Block::default());
    }
    let argon2 = Argon2::new(algorithm, version, params);
    Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(hash_error)
}

/// True when `password` matches the PHC string `hash`; the outputs are compared in constant time
/// (`Output`'s equality).
fn verify_in(password: &[u8], hash: &str, memory: &mut Vec<Block>) -> Result<bool, BrokerError> {
    let phc = PasswordHash::new(hash).map_err(hash_error)?;
    let expected = phc.hash.ok_or_else(|| hash_error("no output"))?;
    Ok(compute(password, &phc, memory)? == expected)
}

/// A new PHC string for `password` with a random salt.
fn hash_in(password: &[u8], memory: &mut Vec<Block>) -> Result<String, BrokerError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(hash_error)?;
    let mut phc = new_hash_phc(&salt, None)?;
    phc.hash = Some(compute(password, &phc, memory)?);
    Ok(phc.to_string())
}

/// The Argon2 hash and the SCRAM credentials of `password`.
fn secrets_in(
    password: &str,
    scram_iterations: u32,
    memory: &mut Vec<Block>,
) -> Result<PasswordSecrets, BrokerError> {
    Ok(PasswordSecrets {
        hash: hash_in(password.as_bytes(), memory)?,
        scram: ScramMechanism::ALL
            .into_iter()
            .map(|m| (m, ScramCredential::derive(m, password, scram_iterations)))
            .collect(),
    })
}

/// A hash no password matches, with the parameters of every new hash: an unknown user's login
/// is checked against it, so it costs the same Argon2 work as a wrong password.
pub fn dummy_hash() -> Result<String, BrokerError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(hash_error)?;
    let output = Output::new(&rand::random::<[u8; 32]>()).map_err(hash_error)?;
    Ok(new_hash_phc(&salt, Some(output))?.to_string())
}

/// What the slots have done, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotStats {
    /// Most Argon2 computations that ever ran at once.
    pub most_running: usize,
    /// Argon2 computations run (verifications and new hashes).
    pub computations: u64,
    /// Memory buffers ever allocated (each about 19 MiB); never more than the slots.
    pub buffers: usize,
}

#[derive(Debug, Default)]
struct SlotsShared {
    /// Buffers not in use. A computation takes one (or allocates one when none is free, which
    /// can happen only while fewer buffers exist than slots) and puts it back.
    memory: Mutex<Vec<Vec<Block>>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
    computations: AtomicU64,
    buffers: AtomicUsize,
    /// A moving average of one computation's time, in µs.
    typical_micros: AtomicU64,
}

impl SlotsShared {
    fn with_memory<T>(&self, work: impl FnOnce(&mut Vec<Block>) -> T) -> T {
        let taken = self.memory.lock().pop();
        let mut memory = taken.unwrap_or_else(|| {
            self.buffers.fetch_add(1, Ordering::Relaxed);
            Vec::new()
        });
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        self.computations.fetch_add(1, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let out = work(&mut memory);
        let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .typical_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |avg| {
                Some(if avg == 0 {
                    took
                } else {
                    avg.saturating_mul(7).saturating_add(took) / 8
                })
            });
        self.running.fetch_sub(1, Ordering::SeqCst);
        self.memory.lock().push(memory);
        out
    }
}

/// A fixed number of Argon2 computations at once. A caller waits for a slot before anything is
/// spawned or allocated, so a flood of logins waits in a queue costing a few bytes each; the
/// slot is held by the blocking task itself, so a caller that goes away cannot free a slot whose
/// computation still runs. Each computation reuses a kept buffer: at most `slots` buffers of
/// about 19 MiB ever exist, instead of one fresh allocation per check that the allocator may
/// never give back.
#[derive(Debug)]
pub struct PasswordSlots {
    permits: Arc<Semaphore>,
    shared: Arc<SlotsShared>,
}

impl PasswordSlots {
    pub fn new(slots: usize) -> PasswordSlots {
        PasswordSlots {
            permits: Arc::new(Semaphore::new(slots.max(1))),
            shared: Arc::default(),
        }
    }

    async fn run<T, F>(&self, work: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Vec<Block>) -> Result<T, BrokerError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| BrokerError::Internal("password slots closed".into()))?;
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            shared.with_memory(work)
        })
        .await
        .unwrap_or_else(|e| Err(BrokerError::Internal(format!("blocking task failed: {e}"))))
    }

    /// True when `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, BrokerError> {
        let (password, hash) = (password.to_string(), hash.to_string());
        self.run(move |memory| verify_in(password.as_bytes(), &hash, memory))
            .await
    }

    /// A new hash of `password`.
    pub async fn hash(&self, password: &str) -> Result<String, BrokerError> {
        let password = password.to_string();
        self.run(move |memory| hash_in(password.as_bytes(), memory))
            .await
    }

    /// What setting `password` stores: a new Argon2 hash and SCRAM-SHA-256/512 credentials
    /// with `scram_iterations`, all computed in one slot.
    pub async fn secrets(
        &self,
        password: &str,
        scram_iterations: u32,
    ) -> Result<PasswordSecrets, BrokerError> {
        let password = password.to_string();
        self.run(move |memory| secrets_in(&password, scram_iterations, memory))
            .await
    }

    /// Runs `work` (PBKDF2 for SCRAM, which needs no Argon2 buffer) in a slot on the blocking
    /// pool: password work of every kind shares the one bound.
    pub async fn compute<T, F>(&self, work: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| BrokerError::Internal("password slots closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _slot = permit;
            work()
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("blocking task failed: {e}")))
    }

    /// [`PasswordSlots::secrets`] on this thread; see [`PasswordSlots::verify_now`].
    pub fn secrets_now(
        &self,
        password: &str,
        scram_iterations: u32,
    ) -> Result<PasswordSecrets, BrokerError> {
        self.shared
            .with_memory(|memory| secrets_in(password, scram_iterations, memory))
    }

    /// [`PasswordSlots::verify`] on this thread, without waiting for a slot: only for the
    /// start-up checks, before any connection is served.
    pub fn verify_now(&self, password: &str, hash: &str) -> Result<bool, BrokerError> {
        self.shared
            .with_memory(|memory| verify_in(password.as_bytes(), hash, memory))
    }

    /// [`PasswordSlots::hash`] on this thread; see [`PasswordSlots::verify_now`].
    pub fn hash_now(&self, password: &str) -> Result<String, BrokerError> {
        self.shared
            .with_memory(|memory| hash_in(password.as_bytes(), memory))
    }

    /// About how long one computation takes here: a refused login waits this long too, so its
    /// answer does not come sooner than a checked one's.
    pub fn typical_duration(&self) -> Duration {
        Duration::from_micros(self.shared.typical_micros.load(Ordering::Relaxed))
    }

    pub fn stats(&self) -> SlotStats {
        SlotStats {
            most_running: self.shared.most_running.load(Ordering::SeqCst),
            computations: self.shared.computations.load(Ordering::SeqCst),
            buffers: self.shared.buffers.load(Ordering::SeqCst),
        }
    }
}

// ----- failed-login limiter -----

/// Each failure is answered after this delay times the failures counted so far...
const DELAY_STEP: Duration = Duration::from_millis(100);
/// ...up to this.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// Addresses, and usernames, tracked at once. To make room, forgotten records (no failures left
/// in their window, no lockout, nothing in flight) go first, then the record with the fewest
/// failures (the least recently seen of those) that is neither locked out nor has attempts in
/// flight. A locked-out record, or one with an attempt in flight, is never dropped: when every
/// record is one, a new key shares the table's overflow record (see [`Table`]).
pub const MAX_TRACKED: usize = 4096;
/// Longest username kept as a key (longer ones cannot exist: usernames have at most 50 bytes).
const MAX_USERNAME_KEY: usize = 64;
/// A peer's failed logins are logged at most once per this interval, with a count.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Failed logins of one address or one username.
#[derive(Debug, Clone)]
struct Record {
    /// Failures since `window_start`.
    failures: u32,
    /// Attempts admitted and not finished: they count against the limit while they run, so
    /// parallel attempts cannot get more guesses than the limit allows.
    pending: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
    last_seen: Instant,
    /// Failures and refusals not yet logged (addresses only), and when the last line was.
    unreported: u32,
    reported_at: Option<Instant>,
}

impl Record {
    fn new(now: Instant) -> Record {
        Record {
            failures: 0,
            pending: 0,
            window_start: now,
            locked_until: None,
            last_seen: now,
            unreported: 0,
            reported_at: None,
        }
    }

    /// Ends a lockout or a window whose time is up.
    fn settle(&mut self, now: Instant, s: &LoginSettings) {
        match self.locked_until {
            Some(until) if now >= until => {
                self.locked_until = None;
                self.failures = 0;
                self.window_start = now;
            }
            Some(_) => {}
            None if now.saturating_duration_since(self.window_start) >= s.failed_login_window => {
                self.failures = 0;
                self.window_start = now;
            }
            None => {}
        }
    }

    fn refuses(&self, now: Instant, s: &LoginSettings) -> bool {
        self.locked_until.is_some_and(|until| now < until)
            || self.failures.saturating_add(self.pending) >= s.max_failed_logins
    }

    fn fail(&mut self, now: Instant, s: &LoginSettings) -> bool {
        self.settle(now, s);
        if self.failures == 0 {
            self.window_start = now;
        }
        self.failures = self.failures.saturating_add(1);
        let locks = self.failures >= s.max_failed_logins && self.locked_until.is_none();
        if locks {
            self.locked_until = Some(now + s.failed_login_lockout);
        }
        locks
    }

    /// Nothing left to remember (after [`Record::settle`]).
    fn forgettable(&self) -> bool {
        self.failures == 0 && self.pending == 0 && self.locked_until.is_none()
    }
}

fn delay_for(failures: u32) -> Duration {
    DELAY_STEP.saturating_mul(failures).min(MAX_DELAY)
}

fn username_key(name: &str) -> String {
    let mut end = name.len().min(MAX_USERNAME_KEY);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// Where an attempt's record for one key is: its own, or the table's shared overflow record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Own,
    Overflow,
}

/// The records of addresses, or of usernames: at most `capacity` of their own, and one shared
/// by every key that found the table full of records it must not drop.
///
/// Why a shared record rather than refusing untracked keys or letting them through: letting
/// them through would give an attacker who fills the table with lockouts unlimited guesses at
/// any user not in it; refusing them would lock every such user out, the right password
/// included. Sharing one record counts their failures together, so untracked keys get at most
/// `max_failed_logins` failures per window between them (fail safe), and their logins still go
/// through while that count is low. A success does not clear it (as for an address: one good
/// account cannot launder guesses at others).
#[derive(Debug)]
struct Table<K> {
    own: HashMap<K, Record>,
    overflow: Record,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(now: Instant) -> Table<K> {
        Table {
            own: HashMap::new(),
            overflow: Record::new(now),
        }
    }

    /// The record for `key` for a new attempt: its own, one made for it (dropping another to
    /// make room when the table is full), or the overflow record.
    fn admit(
        &mut self,
        key: K,
        now: Instant,
        s: &LoginSettings,
        capacity: usize,
    ) -> (&mut Record, Place) {
        if !self.own.contains_key(&key) && self.own.len() >= capacity {
            self.own.retain(|_, r| {
                r.settle(now, s);
                !r.forgettable()
            });
            if self.own.len() >= capacity {
                let droppable = self
                    .own
                    .iter()
                    .filter(|(_, r)| r.locked_until.is_none() && r.pending == 0)
                    .min_by_key(|(_, r)| (r.failures, r.last_seen))
                    .map(|(k, _)| k.clone());
                match droppable {
                    Some(k) => {
                        self.own.remove(&k);
                    }
                    None => {
                        self.overflow.settle(now, s);
                        self.overflow.last_seen = now;
                        return (&mut self.overflow, Place::Overflow);
                    }
                }
            }
        }
        (self.get(key, Place::Own, now, s), Place::Own)
    }

    /// The record an admitted attempt counted on (it is never dropped while the attempt runs).
    fn get(&mut self, key: K, place: Place, now: Instant, s: &LoginSettings) -> &mut Record {
        let r = match place {
            Place::Own => self.own.entry(key).or_insert_with(|| Record::new(now)),
            Place::Overflow => &mut self.overflow,
        };
        r.settle(now, s);
        r.last_seen = now;
        r
    }

    /// Forgets `key`'s own record if nothing is left in it.
    fn forget_if_empty(&mut self, key: &K, place: Place) {
        if place == Place::Own && self.own.get(key).is_some_and(Record::forgettable) {
            self.own.remove(key);
        }
    }
}

#[derive(Debug)]
struct LimiterState {
    addresses: Table<IpAddr>,
    users: Table<String>,
    /// User lockouts not yet logged, and when the last line was (one line per interval).
    user_lockouts_unreported: u32,
    user_lockouts_reported_at: Option<Instant>,
}

/// A log line to write once the state's lock is released.
#[derive(Debug)]
enum Report {
    Peer {
        peer: IpAddr,
        attempts: u32,
        locked: bool,
        username: Option<String>,
    },
    UserLockouts {
        count: u32,
        username: String,
        peer: IpAddr,
    },
}

impl Report {
    fn log(self, lockout: Duration) {
        match self {
            Report::Peer {
                peer,
                attempts,
                locked,
                username,
            } => tracing::warn!(
                %peer,
                attempts,
                locked,
                "failed logins from this address since its last report (last username tried: {:?})",
                username.unwrap_or_default()
            ),
            Report::UserLockouts {
                count,
                username,
                peer,
            } => tracing::warn!(
                count,
                %peer,
                "users locked out for {lockout:?} after failed logins since the last report (last: {username:?})"
            ),
        }
    }
}

/// Failed logins per address and per username, across both doors. A login attempt is admitted
/// ([`LoginLimiter::attempt`]) unless its address or username is locked out or already has as
/// many failures and attempts in flight as the limit; a refused attempt runs no password check
/// at all and is answered like a wrong password. Unknown usernames are tracked like real ones,
/// so lockouts do not tell which users exist. Memory is bounded: at most [`MAX_TRACKED`]
/// addresses and as many usernames.
#[derive(Debug)]
pub struct LoginLimiter {
    settings: LoginSettings,
    capacity: usize,
    state: Mutex<LimiterState>,
}

/// An admitted login attempt: report its outcome with [`Attempt::succeeded`] or
/// [`Attempt::failed`]; dropped without either, it counts as failed.
#[derive(Debug)]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    peer: IpAddr,
    username: Option<String>,
    /// Where the address's and the username's records are (the ones counting this attempt).
    places: (Place, Place),
    finished: bool,
}

impl Attempt<'_> {
    /// The credentials were right: the username's failures are forgotten (the address's are
    /// not, so one good account cannot launder guesses at others).
    pub fn succeeded(mut self, now: Instant) {
        self.finished = true;
        self.limiter
            .finish(now, self.peer, self.username.as_deref(), self.places, false);
    }

    /// The credentials were wrong: returns how long to wait before answering.
    pub fn failed(mut self, now: Instant) -> Duration {
        self.finished = true;
        self.limiter
            .finish(now, self.peer, self.username.as_deref(), self.places, true)
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.limiter.finish(
                Instant::now(),
                self.peer,
                self.username.as_deref(),
                self.places,
                true,
            );
        }
    }
}

impl LoginLimiter {
    pub fn new(settings: LoginSettings) -> LoginLimiter {
        LoginLimiter::with_capacity(settings, MAX_TRACKED)
    }

    pub fn with_capacity(settings: LoginSettings, capacity: usize) -> LoginLimiter {
        LoginLimiter {
            settings,
            capacity: capacity.max(1),
            state: Mutex::new(LimiterState {
                addresses: Table::new(Instant::now()),
                users: Table::new(Instant::now()),
                user_lockouts_unreported: 0,
                user_lockouts_reported_at: None,
            }),
        }
    }

    /// Admits a login attempt from `peer` (for `username`; `None` for a token, which names no
    /// user), or refuses it: `Err(delay)` says how long to wait before answering.
    pub fn attempt(
        &self,
        now: Instant,
        peer: IpAddr,
        username: Option<&str>,
    ) -> Result<Attempt<'_>, Duration> {
        let s = &self.settings;
        let mut report = None;
        let verdict = {
            let mut state = self.state.lock();
            let state = &mut *state;
            let (address, address_place) =
                state
                    .addresses
                    .admit(address_key(peer), now, s, self.capacity);
            let mut refused = address.refuses(now, s);
            let mut failures = address.failures;
            let mut user = None;
            let mut user_place = Place::Own;
            if let Some(name) = username {
                let (r, place) = state.users.admit(username_key(name), now, s, self.capacity);
                refused |= r.refuses(now, s);
                failures = failures.max(r.failures);
                user = Some(r);
                user_place = place;
            }
            if refused {
                address.unreported = address.unreported.saturating_add(1);
                report = peer_report(address, now, peer, username);
                Err(delay_for(failures.max(1)))
            } else {
                address.pending += 1;
                if let Some(user) = user {
                    user.pending += 1;
                }
                Ok((address_place, user_place))
            }
        };
        if let Some(r) = report {
            r.log(s.failed_login_lockout);
        }
        verdict.map(|places| Attempt {
            limiter: self,
            peer,
            username: username.map(str::to_string),
            places,
            finished: false,
        })
    }

    fn finish(
        &self,
        now: Instant,
        peer: IpAddr,
        username: Option<&str>,
        (address_place, user_place): (Place, Place),
        failed: bool,
    ) -> Duration {
        let s = &self.settings;
        let mut reports = Vec::new();
        let delay = {
            let mut state = self.state.lock();
            let state = &mut *state;
            let mut failures = 0;
            if let Some(name) = username {
                let user = state.users.get(username_key(name), user_place, now, s);
                user.pending = user.pending.saturating_sub(1);
                if failed {
                    if user.fail(now, s) {
                        state.user_lockouts_unreported += 1;
                        if state
                            .user_lockouts_reported_at
                            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_INTERVAL)
                        {
                            reports.push(Report::UserLockouts {
                                count: state.user_lockouts_unreported,
                                username: name.to_string(),
                                peer,
                            });
                            state.user_lockouts_unreported = 0;
                            state.user_lockouts_reported_at = Some(now);
                        }
                    }
                    failures = user.failures;
                } else if user_place == Place::Own {
                    // The shared overflow record is not cleared by one user's success.
                    user.failures = 0;
                    user.locked_until = None;
                }
            }
            let key = address_key(peer);
            let address = state.addresses.get(key, address_place, now, s);
            address.pending = address.pending.saturating_sub(1);
            if failed {
                address.fail(now, s);
                address.unreported = address.unreported.saturating_add(1);
                failures = failures.max(address.failures);
                reports.extend(peer_report(address, now, peer, username));
            } else {
                state.addresses.forget_if_empty(&key, address_place);
                if let Some(name) = username {
                    state.users.forget_if_empty(&username_key(name), user_place);
                }
            }
            if failed {
                delay_for(failures)
            } else {
                Duration::ZERO
            }
        };
        for r in reports {
            r.log(s.failed_login_lockout);
        }
        delay
    }

    /// Addresses and usernames tracked now, each with a record of its own (for tests of the
    /// bound).
    pub fn tracked(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.addresses.own.len(), state.users.own.len())
    }
}

/// A log line for `peer` when its interval has passed.
fn peer_report(
    address: &mut Record,
    now: Instant,
    peer: IpAddr,
    username: Option<&str>,
) -> Option<Report> {
    if address
        .reported_at
        .is_some_and(|at| now.saturating_duration_since(at) < REPORT_INTERVAL)
    {
        return None;
    }
    let report = Report::Peer {
        peer,
        attempts: address.unreported,
        locked: address.locked_until.is_some_and(|until| now < until),
        username: username.map(username_key),
    };
    address.unreported = 0;
    address.reported_at = Some(now);
    Some(report)
}

/// The file in the data directory holding the SCRAM stand-in secret.
const STAND_IN_SECRET_FILE: &str = "scram-stand-in-secret";

/// Reads the SCRAM stand-in secret from `data_dir`, creating it (random) on first start.
pub fn stand_in_secret(data_dir: &std::path::Path) -> Result<[u8; 32], BrokerError> {
    let path = data_dir.join(STAND_IN_SECRET_FILE);
    if let Some(doc) = wharf_log_store::read_durable(&path)? {
        return <[u8; 32]>::try_from(doc.as_slice()).map_err(|_| {
            BrokerError::Internal(format!("{} does not hold 32 bytes", path.display()))
        });
    }
    let secret: [u8; 32] = rand::random();
    wharf_log_store::write_durable(&path, &secret)?;
    Ok(secret)
}

/// Everything a broker needs for logins.
#[derive(Debug)]
pub struct Logins {
    pub settings: LoginSettings,
    pub slots: PasswordSlots,
    pub limiter: LoginLimiter,
    /// Checked for unknown users (see [`dummy_hash`]).
    pub dummy_hash: String,
    /// Random once per data directory (kept in it, see [`stand_in_secret`]): the SCRAM salts
    /// shown for users without a credential are derived from it (see
    /// [`ScramCredential::stand_in`]), so they stay the same across restarts like real users'.
    pub scram_secret: [u8; 32],
}

impl Logins {
    pub fn new(settings: LoginSettings, scram_secret: [u8; 32]) -> Result<Logins, BrokerError> {
        Ok(Logins {
            slots: PasswordSlots::new(settings.password_verifications),
            limiter: LoginLimiter::new(settings.clone()),
            dummy_hash: dummy_hash()?,
            scram_secret,
            settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn settings(max_failed_logins: u32) -> LoginSettings {
        LoginSettings {
            max_failed_logins,
            ..LoginSettings::default()
        }
    }

    /// Fails one login of `user` from `peer` at `now`; returns the answer's delay.
    fn fail(l: &LoginLimiter, now: Instant, peer: IpAddr, user: &str) -> Duration {
        l.attempt(now, peer, Some(user))
            .expect("attempt admitted")
            .failed(now)
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_delayed_more_each_time_then_the_address_is_locked_out() {
        let l = LoginLimiter::new(settings(5));
        let t0 = Instant::now();
        let delays: Vec<_> = (0..5)
            .map(|i| fail(&l, t0, ip(1), &format!("user{i}")))
            .collect();
        assert_eq!(
            delays,
            [100, 200, 300, 400, 500].map(Duration::from_millis),
            "the delay grows by 100 ms per failure"
        );
        // Locked: any username from that address is refused, with the same kind of delay.
        let later = t0 + Duration::from_secs(59);
        assert_eq!(
            l.attempt(later, ip(1), Some("someone-else")).err(),
            Some(Duration::from_millis(500))
        );
        assert!(l.attempt(later, ip(1), None).is_err(), "tokens too");
        assert!(
            l.attempt(later, ip(2), Some("other")).is_ok(),
            "other addresses are not"
        );
        // The lockout ends after `failed_login_lockout`, and the count starts again.
        let after = t0 + Duration::from_secs(60);
        assert_eq!(fail(&l, after, ip(1), "user0"), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn the_delay_is_capped_at_one_second() {
        let l = LoginLimiter::new(settings(100));
        let t0 = Instant::now();
        let last = (0..30).map(|_| fail(&l, t0, ip(1), "alice")).last();
        assert_eq!(last, Some(MAX_DELAY));
    }

    #[tokio::test(start_paused = true)]
    async fn a_user_is_locked_out_whatever_the_address() {
        let l = LoginLimiter::new(settings(5));
        let t0 = Instant::now();
        for i in 0..5 {
            fail(&l, t0, ip(i), "alice");
        }
        assert!(
            l.attempt(t0, ip(100), Some("alice")).is_err(),
            "alice is locked from a fresh address"
        );
        assert!(l.attempt(t0, ip(100), Some("bob")).is_ok());
        assert!(l
            .attempt(t0 + Duration::from_secs(60), ip(100), Some("alice"))
            .is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_outside_the_window_do_not_add_up() {
        let l = LoginLimiter::new(settings(5));
        let t0 = Instant::now();
        for _ in 0..4 {
            fail(&l, t0, ip(1), "alice");
        }
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(
            fail(&l, t1, ip(1), "alice"),
            Duration::from_millis(100),
            "a new window counts from one"
        );
        for _ in 0..3 {
            fail(&l, t1, ip(1), "alice");
        }
        assert!(l.attempt(t1, ip(1), Some("alice")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_in_flight_count_against_the_limit() {
        let l = LoginLimiter::new(settings(5));
        let t0 = Instant::now();
        let running: Vec<_> = (0..5)
            .map(|_| l.attempt(t0, ip(1), Some("alice")).unwrap())
            .collect();
        assert!(
            l.attempt(t0, ip(1), Some("alice")).is_err(),
            "a sixth parallel guess would exceed the limit"
        );
        let mut running = running.into_iter();
        // A success gives its place back; a dropped attempt counts as failed.
        running.next().unwrap().succeeded(t0);
        drop(running.next());
        let again = l.attempt(t0, ip(1), Some("bob")).unwrap();
        assert!(l.attempt(t0, ip(1), Some("bob")).is_err());
        drop((again, running));
        assert!(l.attempt(t0, ip(1), Some("bob")).is_err(), "now locked");
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_forgets_the_users_failures_but_not_the_addresss() {
        let l = LoginLimiter::new(settings(5));
        let t0 = Instant::now();
        for _ in 0..3 {
            fail(&l, t0, ip(1), "alice");
        }
        l.attempt(t0, ip(2), Some("alice")).unwrap().succeeded(t0);
        for i in 0..4 {
            fail(&l, t0, ip(10 + i), "alice");
        }
        assert!(
            l.attempt(t0, ip(20), Some("alice")).is_ok(),
            "alice restarted at zero"
        );
        l.attempt(t0, ip(1), Some("mallory")).unwrap().succeeded(t0);
        fail(&l, t0, ip(1), "x");
        assert!(
            l.attempt(t0, ip(1), Some("y")).is_ok() && l.attempt(t0, ip(1), Some("z")).is_err(),
            "address 1 kept its failures: 3 + 1 failed + 1 in flight"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tracked_addresses_and_usernames_are_bounded() {
        let capacity = 16;
        let l = LoginLimiter::with_capacity(settings(5), capacity);
        let t0 = Instant::now();
        for i in 0..1000u32 {
            let peer = IpAddr::from(i.to_be_bytes());
            let name = format!("user-{i}-{}", "x".repeat(200));
            fail(&l, t0, peer, &name);
            let (addresses, users) = l.tracked();
            assert!(
                addresses <= capacity && users <= capacity,
                "{addresses} addresses, {users} usernames tracked"
            );
        }
        // Successful logins leave nothing behind; expired records make room first.
        let l = LoginLimiter::with_capacity(settings(5), capacity);
        for i in 0..100u8 {
            l.attempt(t0, ip(i), Some("alice")).unwrap().succeeded(t0);
        }
        assert_eq!(l.tracked(), (0, 0));
        fail(&l, t0, ip(1), "locked");
        let t1 = t0 + Duration::from_secs(61);
        for i in 0..(capacity as u8 - 1) {
            fail(&l, t1, ip(100 + i), &format!("u{i}"));
        }
        fail(&l, t1, ip(200), "last");
        assert_eq!(l.tracked(), (capacity, capacity));
    }

    /// A distinct address for each `i` (outside the `ip()` range).
    fn nth_ip(i: u32) -> IpAddr {
        IpAddr::from((0x0b00_0000 + i).to_be_bytes())
    }

    /// The bound: a lockout lasts `failed_login_lockout` however many other keys an attacker
    /// makes the limiter track; the table holds at most `MAX_TRACKED` of each kind.
    #[tokio::test(start_paused = true)]
    async fn a_locked_user_stays_locked_while_10_000_other_keys_are_tracked() {
        const OTHERS: u32 = 10_000;
        let l = LoginLimiter::new(settings(5));
        let t0 = Instant::now();
        for i in 0..5 {
            fail(&l, t0, ip(i), "alice");
        }
        // An address locked out on its own failures.
        for i in 0..5 {
            fail(&l, t0, ip(200), &format!("guess{i}"));
        }
        let t1 = t0 + Duration::from_secs(1);
        for i in 0..OTHERS {
            fail(&l, t1, nth_ip(i), &format!("other{i}"));
            let (addresses, users) = l.tracked();
            assert!(
                addresses <= MAX_TRACKED && users <= MAX_TRACKED,
                "{addresses} addresses, {users} usernames tracked; the bound is {MAX_TRACKED}"
            );
        }
        let t2 = t0 + Duration::from_secs(59);
        assert!(
            l.attempt(t2, ip(100), Some("alice")).is_err(),
            "alice's lockout was pushed out by {OTHERS} other keys"
        );
        assert!(
            l.attempt(t2, ip(200), Some("bob")).is_err(),
            "the locked address was pushed out by {OTHERS} other keys"
        );
        let after = t0 + Duration::from_secs(60);
        assert!(l.attempt(after, ip(100), Some("alice")).is_ok());
    }

    /// The bound when every tracked record is locked out: keys that find no room share one
    /// record, so they get `max_failed_logins` failures per window between them, not each.
    #[tokio::test(start_paused = true)]
    async fn keys_finding_the_table_full_of_lockouts_share_one_limit() {
        let capacity = 16;
        let l = LoginLimiter::with_capacity(settings(5), capacity);
        let t0 = Instant::now();
        let mut next_ip = 0;
        let mut fresh_ip = || {
            next_ip += 1;
            nth_ip(next_ip)
        };
        for u in 0..capacity {
            for _ in 0..5 {
                fail(&l, t0, fresh_ip(), &format!("locked{u}"));
            }
        }
        assert_eq!(l.tracked().1, capacity);
        // Untracked usernames still log in while their shared count is low, and a success
        // neither leaks an attempt in flight nor clears the shared failures.
        for i in 0..10 {
            l.attempt(t0, fresh_ip(), Some(&format!("good{i}")))
                .expect("an untracked user with no failures is admitted")
                .succeeded(t0);
        }
        for i in 0..5 {
            fail(&l, t0, fresh_ip(), &format!("new{i}"));
        }
        assert!(
            l.attempt(t0, fresh_ip(), Some("new-5")).is_err(),
            "a sixth untracked username got a guess after five failed between them"
        );
        for u in 0..capacity {
            assert!(
                l.attempt(t0, fresh_ip(), Some(&format!("locked{u}")))
                    .is_err(),
                "locked{u} was let in"
            );
        }
        assert_eq!(l.tracked().1, capacity);
        let after = t0 + Duration::from_secs(60);
        assert!(l.attempt(after, fresh_ip(), Some("new-5")).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_addresses_are_limited_by_their_64_network() {
        let l = LoginLimiter::new(settings(5));
        let t0 = Instant::now();
        for i in 0..5u16 {
            let peer = IpAddr::from([0x2001, 0xdb8, 0, 1, i, 7, 7, i]);
            fail(&l, t0, peer, &format!("user{i}"));
        }
        let same_net = IpAddr::from([0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 1]);
        let other_net = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(l.attempt(t0, same_net, Some("new")).is_err());
        assert!(l.attempt(t0, other_net, Some("new")).is_ok());
        let mapped = IpAddr::from(Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped());
        for i in 0..5 {
            fail(&l, t0, mapped, &format!("v{i}"));
        }
        assert!(
            l.attempt(t0, ip(9), Some("new")).is_err(),
            "v4-mapped is v4"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_the_slots_run_argon2_at_once_and_reuse_their_memory() {
        let slots = Arc::new(PasswordSlots::new(2));
        let hash = slots.hash("right").await.unwrap();
        let mut checks = tokio::task::JoinSet::new();
        for i in 0..64 {
            let (slots, hash) = (Arc::clone(&slots), hash.clone());
            checks.spawn(async move { slots.verify(&format!("wrong{i}"), &hash).await });
        }
        while let Some(r) = checks.join_next().await {
            assert!(!r.unwrap().unwrap());
        }
        let stats = slots.stats();
        assert_eq!(stats.computations, 65);
        assert!(
            stats.most_running <= 2,
            "{} Argon2 computations ran at once; the bound is 2",
            stats.most_running
        );
        assert!(
            stats.buffers <= 2,
            "{} Argon2 buffers allocated; the bound is one per slot",
            stats.buffers
        );
        assert!(slots.verify("right", &hash).await.unwrap());
    }

    #[test]
    fn hashes_are_those_of_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let slots = PasswordSlots::new(1);
        // Users documents written before the slots hold hashes made by the crate's own API.
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let old = Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(slots.verify_now("pw", &old).unwrap());
        assert!(!slots.verify_now("pW", &old).unwrap());
        let new = slots.hash_now("pw").unwrap();
        assert_eq!(
            new.split('$').nth(3),
            old.split('$').nth(3),
            "same parameters"
        );
        let parsed = PasswordHash::new(&new).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        // The dummy hash has the same parameters and matches nothing.
        let dummy = dummy_hash().unwrap();
        assert_eq!(dummy.split('$').nth(3), old.split('$').nth(3));
        assert!(!slots.verify_now("", &dummy).unwrap());
        assert!(slots.verify_now("pw", "not a hash").is_err());
        assert_eq!(slots.stats().buffers, 1);
        assert!(
            slots.typical_duration() > Duration::ZERO,
            "refusals wait as long as a check"
        );
    }
}
