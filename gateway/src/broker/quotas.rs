//! Client quotas, as Kafka's: what operators set with AlterClientQuotas (per user, per client
//! id, per user and client id, and the `<default>` of each), persisted in the data directory,
//! described with DescribeClientQuotas' filters, and the byte-rate sensors that turn
//! `producer_byte_rate` and `consumer_byte_rate` into throttle times.
//!
//! Precedence and sensors follow Kafka's `ClientQuotaManager` (its default quota callback): a
//! request of user U with client id C takes the first quota set of
//! `user=U,client-id=C`, `user=U,client-id=<default>`, `user=U`, `user=<default>,client-id=C`,
//! `user=<default>,client-id=<default>`, `user=<default>`, `client-id=C`,
//! `client-id=<default>`, and shares one sensor with every request that matched the same entity
//! at the same granularity (all clients of U share one for `user=U`).
//!
//! Each sensor is Kafka's `Rate` over a `WindowedSum`: `quota.window.num` samples of
//! `quota.window.size.seconds` each; the rate is the samples' sum over the time they span, at
//! least `num - 1` windows. A value that takes the rate above the quota throttles for
//! `(rate - quota) / quota * window` milliseconds (Kafka's `QuotaUtils.throttleTime`): the time
//! without traffic that brings the rate back to the quota.
//!
//! `request_percentage`, `controller_mutation_rate` and the `ip` entity's
//! `connection_creation_rate` are validated, persisted and described as Kafka does; this module
//! enforces the two byte rates only.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use wharf_log_store::{read_durable, write_durable};

use super::{Broker, BrokerError, Principal};

/// Entity types (Kafka's `ClientQuotaEntity`).
pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// Quota keys (Kafka's `QuotaConfig`).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// DescribeClientQuotas' match types.
pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_SPECIFIED: i8 = 2;

/// The principal name Kafka gives an unauthenticated connection (`User:ANONYMOUS`).
pub const ANONYMOUS: &str = "ANONYMOUS";

/// Sensors kept before idle ones are swept (see [`Sensors::sweep`]).
const MIN_SWEEP_AT: usize = 1024;

/// Why a quota request is refused; both map to Kafka error codes by the door.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaError {
    /// Kafka's INVALID_REQUEST.
    #[error("{0}")]
    InvalidRequest(String),
    /// Kafka's UNSUPPORTED_VERSION (an entity type a filter names that Kafka does not know).
    #[error("{0}")]
    UnsupportedEntityType(String),
}

/// Kafka's `quota.window.num` and `quota.window.size.seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindows {
    pub samples: u32,
    pub size: Duration,
}

impl Default for QuotaWindows {
    fn default() -> QuotaWindows {
        QuotaWindows {
            samples: 11,
            size: Duration::from_secs(1),
        }
    }
}

/// A quota entity: entity type (`user`, `client-id`, `ip`) to name, `None` being `<default>`.
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// One entity's quotas: key to value.
pub type QuotaValues = BTreeMap<String, f64>;

/// One entity's changes in an AlterClientQuotas request, as sent.
#[derive(Debug, Clone, Default)]
pub struct QuotaAlteration {
    /// `(entity type, name)` pairs as sent (duplicates are refused).
    pub entity: Vec<(String, Option<String>)>,
    /// `(key, Some(value))` to set, `(key, None)` to remove.
    pub ops: Vec<(String, Option<f64>)>,
}

/// One component of a DescribeClientQuotas filter, as sent.
#[derive(Debug, Clone)]
pub struct FilterComponent {
    pub entity_type: String,
    pub match_type: i8,
    pub name: Option<String>,
}

/// Which byte rate a sensor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    /// Produce request bytes, against `producer_byte_rate`.
    Produce,
    /// Fetch answer bytes, against `consumer_byte_rate`.
    Fetch,
}

impl QuotaKind {
    fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// The persisted document.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    entries: Vec<StoredEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredEntry {
    entity: Vec<(String, Option<String>)>,
    quotas: QuotaValues,
}

/// Every quota set, their sensors, and the file they are kept in.
#[derive(Debug)]
pub struct ClientQuotas {
    path: PathBuf,
    windows: QuotaWindows,
    /// Where the sensors' millisecond clock starts.
    epoch: Instant,
    entities: RwLock<BTreeMap<QuotaEntity, QuotaValues>>,
    /// Whether any byte-rate quota is set (Kafka's `quotasEnabled`): when none is, nothing is
    /// recorded.
    byte_rates_set: [AtomicBool; 2],
    /// Serialises changes, so each is written whole before the next is computed.
    changes: Mutex<()>,
    sensors: Mutex<Sensors>,
}

impl ClientQuotas {
    /// Opens the quotas kept in `data_dir` (none on first start).
    pub fn open(data_dir: &Path) -> Result<ClientQuotas, BrokerError> {
        let path = data_dir.join("client_quotas");
        let doc: Document = match read_durable(&path)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                BrokerError::Internal(format!("client quotas document is unreadable: {e}"))
            })?,
            None => Document::default(),
        };
        let entities: BTreeMap<QuotaEntity, QuotaValues> = doc
            .entries
            .into_iter()
            .filter(|e| !e.quotas.is_empty())
            .map(|e| (e.entity.into_iter().collect(), e.quotas))
            .collect();
        let quotas = ClientQuotas {
            path,
            windows: QuotaWindows::default(),
            epoch: Instant::now(),
            entities: RwLock::new(entities),
            byte_rates_set: [AtomicBool::new(false), AtomicBool::new(false)],
            changes: Mutex::new(()),
            sensors: Mutex::new(Sensors::default()),
        };
        quotas.note_byte_rates(&quotas.entities.read());
        Ok(quotas)
    }

    /// Uses `windows` for the sensors (before any is made).
    pub fn set_windows(&mut self, windows: QuotaWindows) {
        self.windows = QuotaWindows {
            samples: windows.samples.max(1),
            size: windows.size.max(Duration::from_millis(1)),
        };
    }

    fn note_byte_rates(&self, entities: &BTreeMap<QuotaEntity, QuotaValues>) {
        for kind in [QuotaKind::Produce, QuotaKind::Fetch] {
            let set = entities.values().any(|q| q.contains_key(kind.key()));
            self.byte_rates_set[kind as usize].store(set, Ordering::Relaxed);
        }
    }

    fn enabled(&self, kind: QuotaKind) -> bool {
        self.byte_rates_set[kind as usize].load(Ordering::Relaxed)
    }

    /// The entities matching `filter` (Kafka's `ClientQuotasImage.describe`) with their quotas.
    pub fn describe(
        &self,
        filter: &[FilterComponent],
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, QuotaValues)>, QuotaError> {
        let mut exact: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut specified: Vec<&str> = Vec::new();
        for c in filter {
            let t = c.entity_type.as_str();
            if t.is_empty() {
                return Err(QuotaError::InvalidRequest(
                    "Invalid empty entity type.".into(),
                ));
            }
            if exact.contains_key(t) || specified.contains(&t) {
                return Err(QuotaError::InvalidRequest(format!(
                    "Entity type {t} cannot appear more than once in the filter."
                )));
            }
            if ![USER, CLIENT_ID, IP].contains(&t) {
                return Err(QuotaError::UnsupportedEntityType(format!(
                    "Unsupported entity type {t}"
                )));
            }
            match c.match_type {
                MATCH_EXACT => match &c.name {
                    Some(n) => {
                        exact.insert(t, Some(n.as_str()));
                    }
                    None => {
                        return Err(QuotaError::InvalidRequest(
                            "Request specified MATCH_TYPE_EXACT, but set match string to null."
                                .into(),
                        ))
                    }
                },
                MATCH_DEFAULT | MATCH_SPECIFIED if c.name.is_some() => {
                    let which = if c.match_type == MATCH_DEFAULT {
                        "MATCH_TYPE_DEFAULT"
                    } else {
                        "MATCH_TYPE_SPECIFIED"
                    };
                    return Err(QuotaError::InvalidRequest(format!(
                        "Request specified {which}, but also specified a match string."
                    )));
                }
                MATCH_DEFAULT => {
                    exact.insert(t, None);
                }
                MATCH_SPECIFIED => specified.push(t),
                other => {
                    return Err(QuotaError::InvalidRequest(format!(
                        "Unknown match type {other}"
                    )))
                }
            }
        }
        let has = |t: &str| exact.contains_key(t) || specified.contains(&t);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return Err(QuotaError::InvalidRequest(
                "Invalid entity filter component combination. IP filter component should not \
                 be used with user or clientId filter component."
                    .into(),
            ));
        }
        let entities = self.entities.read();
        Ok(entities
            .iter()
            .filter(|(entity, _)| {
                (!strict || entity.len() == exact.len() + specified.len())
                    && exact.iter().all(|(t, name)| {
                        entity
                            .get(*t)
                            .is_some_and(|n| n.as_deref() == name.as_deref())
                    })
                    && specified.iter().all(|t| entity.contains_key(*t))
            })
            .map(|(e, q)| (e.clone(), q.clone()))
            .collect())
    }

    /// Applies (or with `validate_only`, checks) `alterations` as Kafka's
    /// `ClientQuotaControlManager`: each entity's changes are checked and applied whole or
    /// refused whole, with one result per alteration in order. Persisted before it returns.
    pub fn alter(
        &self,
        alterations: &[QuotaAlteration],
        validate_only: bool,
    ) -> Result<Vec<Result<(), QuotaError>>, BrokerError> {
        let _change = self.changes.lock();
        let mut next = self.entities.read().clone();
        // Sets: a request may hold about a million alterations (`max_request_size`), and
        // each is checked against all before it while `changes` is held.
        let mut seen: BTreeSet<QuotaEntity> = BTreeSet::new();
        let mut results = Vec::with_capacity(alterations.len());
        for a in alterations {
            let outcome = validate(a).and_then(|(entity, changes)| {
                if !seen.insert(entity.clone()) {
                    return Err(QuotaError::InvalidRequest(format!(
                        "Ignoring duplicate entity {}",
                        shown(&entity)
                    )));
                }
                Ok((entity, changes))
            });
            match outcome {
                Ok((entity, changes)) => {
                    let values = next.entry(entity.clone()).or_default();
                    for (key, value) in changes {
                        match value {
                            Some(v) => values.insert(key, v),
                            None => values.remove(&key),
                        };
                    }
                    if values.is_empty() {
                        next.remove(&entity);
                    }
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if validate_only || *self.entities.read() == next {
            return Ok(results);
        }
        let doc = Document {
            entries: next
                .iter()
                .map(|(e, q)| StoredEntry {
                    entity: e.iter().map(|(t, n)| (t.clone(), n.clone())).collect(),
                    quotas: q.clone(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&doc).map_err(|e| BrokerError::Internal(e.to_string()))?;
        write_durable(&self.path, &bytes)?;
        self.note_byte_rates(&next);
        *self.entities.write() = next;
        Ok(results)
    }

    /// Kafka's `quotaMetricTags`: the (user, client id) a request's sensor is kept under,
    /// after the entity that holds its quota.
    fn sensor_tags(&self, kind: QuotaKind, user: &str, client_id: &str) -> (String, String) {
        let entities = self.entities.read();
        let set = |u: Option<Option<&str>>, c: Option<Option<&str>>| {
            let mut e = QuotaEntity::new();
            if let Some(u) = u {
                e.insert(USER.into(), u.map(str::to_string));
            }
            if let Some(c) = c {
                e.insert(CLIENT_ID.into(), c.map(str::to_string));
            }
            entities.get(&e).is_some_and(|q| q.contains_key(kind.key()))
        };
        let both = (user.to_string(), client_id.to_string());
        let user_only = (user.to_string(), String::new());
        if set(Some(Some(user)), Some(Some(client_id))) || set(Some(Some(user)), Some(None)) {
            both
        } else if set(Some(Some(user)), None) {
            user_only
        } else if set(Some(None), Some(Some(client_id))) || set(Some(None), Some(None)) {
            both
        } else if set(Some(None), None) {
            user_only
        } else {
            (String::new(), client_id.to_string())
        }
    }

    /// Kafka's `quotaLimit`: the quota of the sensor kept under `tags`, if any.
    fn limit(&self, kind: QuotaKind, (user, client_id): &(String, String)) -> Option<f64> {
        let entities = self.entities.read();
        let get = |u: Option<Option<&str>>, c: Option<Option<&str>>| {
            let mut e = QuotaEntity::new();
            if let Some(u) = u {
                e.insert(USER.into(), u.map(str::to_string));
            }
            if let Some(c) = c {
                e.insert(CLIENT_ID.into(), c.map(str::to_string));
            }
            entities.get(&e).and_then(|q| q.get(kind.key()).copied())
        };
        let (u, c) = (user.as_str(), client_id.as_str());
        if !u.is_empty() && !c.is_empty() {
            get(Some(Some(u)), Some(Some(c)))
                .or_else(|| get(Some(Some(u)), Some(None)))
                .or_else(|| get(Some(None), Some(Some(c))))
                .or_else(|| get(Some(None), Some(None)))
        } else if !u.is_empty() {
            get(Some(Some(u)), None).or_else(|| get(Some(None), None))
        } else if !c.is_empty() {
            get(None, Some(Some(c))).or_else(|| get(None, Some(None)))
        } else {
            None
        }
    }

    fn now_ms(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(i64::MAX)
    }

    /// Records `value` bytes of `kind` for `user`'s client `client_id` at `now`; the throttle
    /// time in milliseconds when that takes its sensor above its quota, else 0 (Kafka's
    /// `maybeRecordAndGetThrottleTimeMs`).
    pub fn record(
        &self,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        value: f64,
        now: Instant,
    ) -> i32 {
        if !self.enabled(kind) {
            return 0;
        }
        let tags = self.sensor_tags(kind, user, client_id);
        let Some(bound) = self.limit(kind, &tags) else {
            return 0;
        };
        let now = self.now_ms(now);
        let mut sensors = self.sensors.lock();
        let rate = sensors.get(kind, tags, now, self.windows);
        rate.record(value, now, self.windows);
        let observed = rate.measure(now, self.windows);
        if observed <= bound {
            return 0;
        }
        let window = rate.window_size(now, self.windows) as f64;
        let ms = ((observed - bound) / bound * window).round();
        // Kafka's `.toInt` of a long; a throttle beyond i32 is meaningless anyway.
        ms.clamp(0.0, f64::from(i32::MAX)) as i32
    }

    /// Takes back `value` recorded at `now` (a throttled Fetch answers no data, so its bytes
    /// are not counted: Kafka's `unrecordQuotaSensor`).
    pub fn unrecord(&self, kind: QuotaKind, user: &str, client_id: &str, value: f64, now: Instant) {
        if !self.enabled(kind) {
            return;
        }
        let tags = self.sensor_tags(kind, user, client_id);
        let now = self.now_ms(now);
        let mut sensors = self.sensors.lock();
        sensors
            .get(kind, tags, now, self.windows)
            .record(-value, now, self.windows);
    }

    /// The most bytes one answer may carry without being throttled however idle the client
    /// was: quota × (samples - 1) × window (Kafka's `getMaxValueInQuotaWindow`, which bounds a
    /// Fetch's `max_bytes`); `None` without a quota.
    pub fn max_value_in_window(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<f64> {
        if !self.enabled(kind) {
            return None;
        }
        let tags = self.sensor_tags(kind, user, client_id);
        self.limit(kind, &tags).map(|q| {
            q * f64::from(self.windows.samples.saturating_sub(1)) * self.windows.size.as_secs_f64()
        })
    }

    /// Sensors alive now (for the bound on idle sensors).
    pub fn sensor_count(&self) -> usize {
        self.sensors.lock().rates.len()
    }
}

/// Checks one alteration as Kafka's `ClientQuotaControlManager`; gives the entity and its
/// changes.
#[allow(clippy::type_complexity)]
fn validate(a: &QuotaAlteration) -> Result<(QuotaEntity, Vec<(String, Option<f64>)>), QuotaError> {
    let mut changes: Vec<(String, Option<f64>)> = Vec::with_capacity(a.ops.len());
    let mut keys: HashSet<&str> = HashSet::with_capacity(a.ops.len());
    for (key, value) in &a.ops {
        if !keys.insert(key.as_str()) {
            return Err(QuotaError::InvalidRequest(format!(
                "Duplicate quota key {key} not updating quota for this entity"
            )));
        }
        changes.push((key.clone(), *value));
    }
    if a.entity.is_empty() {
        return Err(QuotaError::InvalidRequest(
            "Invalid empty client quota entity".into(),
        ));
    }
    let mut entity = QuotaEntity::new();
    for (t, name) in &a.entity {
        if entity.contains_key(t) {
            return Err(QuotaError::InvalidRequest(format!(
                "Invalid client quota entity, duplicate entity entry {t}"
            )));
        }
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return Err(QuotaError::InvalidRequest(format!(
                "Unhandled client quota entity type: {t}"
            )));
        }
        if name.as_deref() == Some("") {
            return Err(QuotaError::InvalidRequest(format!(
                "Empty {t} not supported"
            )));
        }
        entity.insert(t.clone(), name.clone());
    }
    // The keys each kind of entity takes, and whether their values are whole numbers.
    let keys: &[(&str, bool)] = if let Some(ip) = entity.get(IP) {
        if entity.len() > 1 {
            return Err(QuotaError::InvalidRequest(
                "Invalid quota entity combination, IP entity shouldnot be combined with User or \
                 ClientId"
                    .into(),
            ));
        }
        // Kafka also resolves host names; Wharf takes addresses only (no DNS from a request).
        if let Some(ip) = ip {
            if ip.parse::<IpAddr>().is_err() {
                return Err(QuotaError::InvalidRequest(format!(
                    "{ip} is not a valid IP or resolvable host."
                )));
            }
        }
        &[(CONNECTION_CREATION_RATE, true)]
    } else {
        &[
            (PRODUCER_BYTE_RATE, true),
            (CONSUMER_BYTE_RATE, true),
            (REQUEST_PERCENTAGE, false),
            (CONTROLLER_MUTATION_RATE, false),
        ]
    };
    for (key, value) in &changes {
        let Some(value) = value else { continue };
        let Some(&(_, whole)) = keys.iter().find(|(k, _)| k == key) else {
            return Err(QuotaError::InvalidRequest(format!(
                "Invalid configuration key {key}"
            )));
        };
        // NaN is refused too.
        if value.is_nan() || *value <= 0.0 {
            return Err(QuotaError::InvalidRequest(format!(
                "Quota {key} must be greater than 0"
            )));
        }
        if whole {
            let max = if key == CONNECTION_CREATION_RATE {
                f64::from(i32::MAX)
            } else {
                i64::MAX as f64
            };
            if *value > max {
                let kind = if key == CONNECTION_CREATION_RATE {
                    "an INT"
                } else {
                    "a LONG"
                };
                return Err(QuotaError::InvalidRequest(format!(
                    "Proposed value for {key} is too large for {kind}."
                )));
            }
            if (value % 1.0).abs() > 1e-6 {
                return Err(QuotaError::InvalidRequest(format!(
                    "{key} cannot be a fractional value."
                )));
            }
        } else if !value.is_finite() {
            return Err(QuotaError::InvalidRequest(format!(
                "Quota {key} must be a finite number"
            )));
        }
    }
    Ok((entity, changes))
}

/// An entity as Kafka prints it in messages.
fn shown(entity: &QuotaEntity) -> String {
    let parts: Vec<String> = entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect();
    format!("ClientQuotaEntity({})", parts.join(", "))
}

/// The byte-rate sensors, by kind and tags.
#[derive(Debug, Default)]
struct Sensors {
    rates: HashMap<(QuotaKind, String, String), Rate>,
    /// When the map reaches this size, sensors idle for the whole rate window are dropped.
    sweep_at: usize,
}

impl Sensors {
    fn get(
        &mut self,
        kind: QuotaKind,
        (user, client): (String, String),
        now: i64,
        windows: QuotaWindows,
    ) -> &mut Rate {
        let key = (kind, user, client);
        if !self.rates.contains_key(&key) && self.rates.len() >= self.sweep_at.max(MIN_SWEEP_AT) {
            self.sweep(now, windows);
        }
        self.rates.entry(key).or_default()
    }

    /// Bound: a sensor whose last record is older than the whole window measures nothing
    /// (every sample is obsolete), so it is dropped; the map holds at most about twice the
    /// sensors recorded within one window (client ids are chosen by clients).
    fn sweep(&mut self, now: i64, windows: QuotaWindows) {
        let expire = windows.expire_ms();
        self.rates.retain(|_, r| now - r.last_event_ms() < expire);
        self.sweep_at = (self.rates.len() * 2).max(MIN_SWEEP_AT);
    }
}

impl QuotaWindows {
    fn size_ms(self) -> i64 {
        i64::try_from(self.size.as_millis())
            .unwrap_or(i64::MAX)
            .max(1)
    }

    fn expire_ms(self) -> i64 {
        self.size_ms().saturating_mul(i64::from(self.samples))
    }
}

/// One sample of a windowed sum (Kafka's `SampledStat.Sample`).
#[derive(Debug, Clone)]
struct Sample {
    value: f64,
    start_ms: i64,
    last_event_ms: i64,
}

impl Sample {
    fn new(now: i64) -> Sample {
        Sample {
            value: 0.0,
            start_ms: now,
            last_event_ms: now,
        }
    }
}

/// Kafka's `Rate` over a `WindowedSum`: `samples + 1` rotating samples (one overlapping the
/// window's start).
#[derive(Debug, Clone, Default)]
struct Rate {
    samples: Vec<Sample>,
    current: usize,
}

impl Rate {
    fn last_event_ms(&self) -> i64 {
        self.samples
            .iter()
            .map(|s| s.last_event_ms)
            .max()
            .unwrap_or(i64::MIN)
    }

    fn record(&mut self, value: f64, now: i64, w: QuotaWindows) {
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
            self.current = 0;
        }
        if now - self.samples[self.current].start_ms >= w.size_ms() {
            let slots = w.samples as usize + 1;
            self.current = (self.current + 1) % slots;
            if self.current >= self.samples.len() {
                self.samples.push(Sample::new(now));
            } else {
                self.samples[self.current] = Sample::new(now);
            }
        }
        let s = &mut self.samples[self.current];
        s.value += value;
        s.last_event_ms = now;
    }

    /// Resets the samples without events within the whole window.
    fn purge(&mut self, now: i64, w: QuotaWindows) {
        let expire = w.expire_ms();
        for s in &mut self.samples {
            if now - s.last_event_ms >= expire {
                *s = Sample::new(now);
            }
        }
    }

    /// Kafka's `Rate.windowSize`: the time the samples span, at least `samples - 1` windows,
    /// at least 1 ms.
    fn window_size(&mut self, now: i64, w: QuotaWindows) -> i64 {
        self.purge(now, w);
        if self.samples.is_empty() {
            self.samples.push(Sample::new(now));
        }
        let oldest = self.samples.iter().map(|s| s.start_ms).min().unwrap_or(now);
        let mut elapsed = now - oldest;
        let size = w.size_ms();
        let full = elapsed / size;
        let min_full = i64::from(w.samples) - 1;
        if full < min_full {
            elapsed += (min_full - full) * size;
        }
        elapsed.max(1)
    }

    /// Bytes per second now.
    fn measure(&mut self, now: i64, w: QuotaWindows) -> f64 {
        self.purge(now, w);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (self.window_size(now, w) as f64 / 1000.0)
    }
}

impl Broker {
    /// The name quotas know `principal` by: its user name, Kafka's `ANONYMOUS` without
    /// authentication.
    pub fn quota_user(&self, principal: &Principal) -> String {
        match principal {
            Principal::Anonymous => ANONYMOUS.into(),
            Principal::User(id) => self.user(*id).map(|u| u.username).unwrap_or_default(),
        }
    }

    /// Records `bytes` of `kind` by `principal`'s client `client_id`; the throttle time in
    /// milliseconds (0: within its quota).
    pub fn record_quota_bytes(
        &self,
        kind: QuotaKind,
        principal: &Principal,
        client_id: &str,
        bytes: usize,
        now: Instant,
    ) -> i32 {
        if !self.quotas.enabled(kind) {
            return 0;
        }
        let user = self.quota_user(principal);
        self.quotas
            .record(kind, &user, client_id, bytes as f64, now)
    }

    /// The consumer-quota verdict on a Fetch answer of `bytes` (Kafka's `KafkaApis`
    /// `processResponseCallback`): the throttle time in milliseconds, 0 when the answer may be
    /// sent. Throttled, the answer is not sent (the client gets Kafka's throttled answer, no
    /// partitions), so its bytes are taken back out of the rate at once.
    pub fn record_fetch_quota(
        &self,
        principal: &Principal,
        client_id: &str,
        bytes: usize,
        now: Instant,
    ) -> i32 {
        let kind = QuotaKind::Fetch;
        if !self.quotas.enabled(kind) {
            return 0;
        }
        let user = self.quota_user(principal);
        let throttle = self
            .quotas
            .record(kind, &user, client_id, bytes as f64, now);
        if throttle > 0 {
            self.quotas
                .unrecord(kind, &user, client_id, bytes as f64, now);
        }
        throttle
    }

    /// The most Fetch answer bytes `principal`'s client may get at once: its consumer quota's
    /// worth of the whole window (Kafka bounds a Fetch's `max_bytes` so); `usize::MAX` without
    /// a quota.
    pub fn fetch_quota_max_bytes(&self, principal: &Principal, client_id: &str) -> usize {
        if !self.quotas.enabled(QuotaKind::Fetch) {
            return usize::MAX;
        }
        let user = self.quota_user(principal);
        match self
            .quotas
            .max_value_in_window(QuotaKind::Fetch, &user, client_id)
        {
            // Kafka's `.toInt`, kept at least 1 so one batch can still be answered (KIP-74).
            Some(max) => (max.clamp(1.0, f64::from(i32::MAX))) as usize,
            None => usize::MAX,
        }
    }

    /// The quotas matching a DescribeClientQuotas filter.
    pub fn describe_client_quotas(
        &self,
        filter: &[FilterComponent],
        strict: bool,
    ) -> Result<Vec<(QuotaEntity, QuotaValues)>, QuotaError> {
        self.quotas.describe(filter, strict)
    }

    /// Applies an AlterClientQuotas request (persisted on the blocking pool); one result per
    /// alteration.
    pub async fn alter_client_quotas(
        self: &std::sync::Arc<Self>,
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), QuotaError>>, BrokerError> {
        let broker = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || broker.quotas.alter(&alterations, validate_only))
            .await
            .unwrap_or_else(|e| Err(BrokerError::Internal(format!("blocking task failed: {e}"))))
    }

    /// Sets the rate windows (`[kafka] quota_window_num`, `quota_window_size`).
    pub fn with_quota_windows(mut self, windows: QuotaWindows) -> Broker {
        self.quotas.set_windows(windows);
        self
    }
}

#[cfg(test)]
#[path = "quotas_tests.rs"]
mod tests;
