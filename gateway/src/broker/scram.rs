//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server's side: the credentials a
//! user keeps instead of a password ([`ScramCredential`]), and one exchange
//! ([`parse_client_first`], [`ScramExchange::server_first`], [`ScramExchange::finish`]).
//!
//! Everything a client sends is parsed with bounds ([`MAX_MESSAGE`]) and answered with a
//! [`ScramError`], never a panic. The proof is checked in constant time. An exchange for a user
//! without a credential runs on a stand-in credential whose salt is derived from a server secret
//! and the username, so the server-first message of an unknown user looks like a real user's
//! (same salt on every try) and the exchange fails only at the proof, as a wrong password does.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

/// Longest client message accepted (client-first or client-final). Kafka's own clients send
/// well under 300 bytes; a username is at most 50 characters, each escaped to at most 3.
pub const MAX_MESSAGE: usize = 1024;
/// Fewest and most PBKDF2 iterations a credential may have (Kafka's bounds for credentials
/// given by clients; the server's own derivations use `scram_iterations`).
pub const MIN_ITERATIONS: u32 = 4096;
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Bytes of a random salt the server makes (Kafka's ScramFormatter uses this size too).
const SALT_LEN: usize = 32;
/// Bytes of the server's part of the nonce, before base64.
const NONCE_LEN: usize = 24;
/// Longest salt a credential given by a client may have.
pub const MAX_SALT_LEN: usize = 128;

/// A SCRAM mechanism, with the number Kafka's ScramCredential APIs give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's `ScramMechanism` type (1: SHA-256, 2: SHA-512; 0 is UNKNOWN).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_kafka_type(t: i8) -> Option<ScramMechanism> {
        ScramMechanism::ALL
            .into_iter()
            .find(|m| m.kafka_type() == t)
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        ScramMechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Bytes of the hash (and of every key).
    pub fn output_len(self) -> usize {
        match self {
            ScramMechanism::Sha256 => 32,
            ScramMechanism::Sha512 => 64,
        }
    }

    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC takes keys of any length: this cannot fail.
            let Ok(mut mac) = <M as hmac::digest::KeyInit>::new_from_slice(key) else {
                return Vec::new();
            };
            for p in parts {
                mac.update(p);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, parts),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, parts),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(data).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with this mechanism's HMAC (CPU work: run it
    /// in a password slot).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out)
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out)
            }
        }
        out
    }
}

impl std::fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Byte strings kept as base64 in the users document.
mod b64 {
    use super::B64;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        B64.decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// What the server keeps for one user and mechanism (RFC 5802 section 3): enough to check a
/// proof and to prove itself, not enough to log in as the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "b64")]
    pub stored_key: Vec<u8>,
    #[serde(with = "b64")]
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// A credential for `password` with a new random salt (PBKDF2: CPU work).
    pub fn derive(mechanism: ScramMechanism, password: &str, iterations: u32) -> ScramCredential {
        let salt: [u8; SALT_LEN] = rand::random();
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        ScramCredential::from_salted_password(mechanism, salt.to_vec(), &salted, iterations)
    }

    /// The credential for a salted password computed elsewhere (by a Kafka client, in
    /// AlterUserScramCredentials); the salted password itself is not kept.
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: u32,
    ) -> ScramCredential {
        let client_key = mechanism.hmac(salted_password, &[b"Client Key"]);
        let server_key = mechanism.hmac(salted_password, &[b"Server Key"]);
        ScramCredential {
            salt,
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key,
        }
    }

    /// True when `password` is the one this credential was derived from (PBKDF2: CPU work; a
    /// SASL/PLAIN or native login of a user created from Kafka, who has no Argon2 hash).
    pub fn matches_password(&self, mechanism: ScramMechanism, password: &str) -> bool {
        let salted = mechanism.salted_password(password.as_bytes(), &self.salt, self.iterations);
        let client_key = mechanism.hmac(&salted, &[b"Client Key"]);
        constant_time_eq(&mechanism.hash(&client_key), &self.stored_key)
    }

    /// The stand-in credential of a user without one: salt and keys derived from `secret` and
    /// the username, so every exchange for that name shows the same salt, and no proof matches
    /// (the stored key is not the hash of any key a client could know).
    pub fn stand_in(
        mechanism: ScramMechanism,
        secret: &[u8],
        username: &str,
        iterations: u32,
    ) -> ScramCredential {
        let mut salt = mechanism.hmac(
            secret,
            &[b"salt", mechanism.name().as_bytes(), username.as_bytes()],
        );
        salt.truncate(SALT_LEN);
        ScramCredential {
            salt,
            iterations,
            stored_key: mechanism.hmac(secret, &[b"stored", username.as_bytes()]),
            server_key: mechanism.hmac(secret, &[b"server", username.as_bytes()]),
        }
    }
}

/// Equality of two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why an exchange failed. The messages go to the client, so none says whether the user
/// exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("SCRAM message of {0} bytes, more than {MAX_MESSAGE}")]
    TooLong(usize),
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("delegation tokens (tokenauth) are not supported")]
    TokenAuth,
    #[error("the authorization id must be empty or the username")]
    AuthorizationId,
    #[error("the nonce does not match")]
    Nonce,
    #[error("authentication failed: invalid credentials")]
    InvalidProof,
}

/// What the client's first message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The GS2 header as sent (`n,,` or `n,a=alice,`); the client-final's `c=` must carry it.
    gs2_header: String,
    /// The username, unescaped (`=2C` is ',', `=3D` is '=').
    pub username: String,
    /// The authorization id, unescaped, if given.
    pub authzid: Option<String>,
    client_nonce: String,
    /// `client-first-message-bare`, part of the AuthMessage.
    bare: String,
}

/// The text of a client message, bounded.
fn message_text(bytes: &[u8]) -> Result<&str, ScramError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ScramError::TooLong(bytes.len()));
    }
    std::str::from_utf8(bytes).map_err(|_| ScramError::Malformed("not UTF-8"))
}

/// A `saslname` with its escapes undone: '=' is only allowed as `=2C` or `=3D`, ',' never.
fn unescape_name(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let esc = rest
            .get(i..i + 3)
            .ok_or(ScramError::Malformed("bad escape in a name"))?;
        out.push(match esc {
            "=2C" => ',',
            "=3D" => '=',
            _ => return Err(ScramError::Malformed("bad escape in a name")),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("empty name"));
    }
    Ok(out)
}

/// A nonce is printable ASCII without ','.
fn valid_nonce(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Parses `client-first-message` (RFC 5802 section 7): a GS2 header `n,` or `y,` (channel
/// binding `p=` is refused), an optional `a=authzid`, then `n=username,r=nonce` and optional
/// extensions, of which `tokenauth=true` (Kafka's delegation tokens) is refused.
pub fn parse_client_first(bytes: &[u8]) -> Result<ClientFirst, ScramError> {
    let text = message_text(bytes)?;
    let mut parts = text.splitn(3, ',');
    let flag = parts.next().unwrap_or_default();
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed("GS2 header")),
    }
    let authz = parts.next().ok_or(ScramError::Malformed("GS2 header"))?;
    let bare = parts.next().ok_or(ScramError::Malformed("GS2 header"))?;
    let authzid = match authz {
        "" => None,
        a => Some(unescape_name(
            a.strip_prefix("a=")
                .ok_or(ScramError::Malformed("authorization id"))?,
        )?),
    };
    let gs2_header = format!("{flag},{authz},");
    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(ScramError::Malformed("mandatory extension"));
    }
    let username = unescape_name(
        first
            .strip_prefix("n=")
            .ok_or(ScramError::Malformed("username"))?,
    )?;
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| valid_nonce(n))
        .ok_or(ScramError::Malformed("nonce"))?
        .to_string();
    for ext in attrs {
        let (key, value) = ext
            .split_once('=')
            .ok_or(ScramError::Malformed("extension"))?;
        if key.is_empty() {
            return Err(ScramError::Malformed("extension"));
        }
        if key == "tokenauth" && value.eq_ignore_ascii_case("true") {
            return Err(ScramError::TokenAuth);
        }
    }
    if authzid.as_ref().is_some_and(|a| *a != username) {
        return Err(ScramError::AuthorizationId);
    }
    Ok(ClientFirst {
        gs2_header,
        username,
        authzid,
        client_nonce,
        bare: bare.to_string(),
    })
}

/// One exchange after the client's first message, waiting for its final one.
#[derive(Debug, Clone)]
pub struct ScramExchange {
    mechanism: ScramMechanism,
    client_first: ClientFirst,
    credential: ScramCredential,
    /// The client's nonce followed by ours.
    nonce: String,
    server_first: String,
}

impl ScramExchange {
    /// Starts an exchange for `client_first` with the user's `credential` (a stand-in for a
    /// user who has none: see [`ScramCredential::stand_in`]).
    pub fn new(
        mechanism: ScramMechanism,
        client_first: ClientFirst,
        credential: ScramCredential,
    ) -> ScramExchange {
        let ours: [u8; NONCE_LEN] = rand::random();
        let nonce = format!("{}{}", client_first.client_nonce, B64.encode(ours));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        ScramExchange {
            mechanism,
            client_first,
            credential,
            nonce,
            server_first,
        }
    }

    pub fn mechanism(&self) -> ScramMechanism {
        self.mechanism
    }

    /// True when the exchange runs on `credential` (the user's, not a stand-in, and not since
    /// replaced).
    pub fn uses(&self, credential: &ScramCredential) -> bool {
        self.credential == *credential
    }

    pub fn username(&self) -> &str {
        &self.client_first.username
    }

    /// `server-first-message`, to send to the client.
    pub fn server_first(&self) -> &[u8] {
        self.server_first.as_bytes()
    }

    /// Checks `client-final-message` (`c=`, `r=`, extensions, `p=` last); on success returns
    /// `server-final-message` (`v=` and the server signature).
    pub fn finish(&self, bytes: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = message_text(bytes)?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("channel binding"))?;
        let binding = B64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("channel binding"))?;
        if binding != self.client_first.gs2_header.as_bytes() {
            return Err(ScramError::ChannelBinding);
        }
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("nonce"))?;
        if !constant_time_eq(nonce.as_bytes(), self.nonce.as_bytes()) {
            return Err(ScramError::Nonce);
        }
        let proof = B64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof"))?;
        let m = self.mechanism;
        if proof.len() != m.output_len() {
            return Err(ScramError::InvalidProof);
        }
        let auth_message = [
            self.client_first.bare.as_bytes(),
            b",",
            self.server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = m.hmac(&self.credential.stored_key, &auth_message);
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        if !constant_time_eq(&m.hash(&client_key), &self.credential.stored_key) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = m.hmac(&self.credential.server_key, &auth_message);
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A client's side, only for the tests: the proof for `password` over an exchange.
    pub(crate) fn client_final(
        m: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
        channel: &str,
    ) -> (String, Vec<u8>) {
        let nonce = server_first
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .unwrap();
        let salt = B64
            .decode(
                server_first
                    .split(',')
                    .find_map(|a| a.strip_prefix("s="))
                    .unwrap(),
            )
            .unwrap();
        let iterations: u32 = server_first
            .split(',')
            .find_map(|a| a.strip_prefix("i="))
            .unwrap()
            .parse()
            .unwrap();
        let without_proof = format!("c={channel},r={nonce}");
        let salted = m.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, &[b"Client Key"]);
        let stored = m.hash(&client_key);
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = m.hmac(&stored, &[auth.as_bytes()]);
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        let server_key = m.hmac(&salted, &[b"Server Key"]);
        let server_sig = m.hmac(&server_key, &[auth.as_bytes()]);
        (
            format!("{without_proof},p={}", B64.encode(proof)),
            format!("v={}", B64.encode(server_sig)).into_bytes(),
        )
    }

    /// RFC 7677 section 3: user "user", password "pencil", the exchange byte for byte.
    #[test]
    fn rfc7677_sha256_test_vector() {
        let m = ScramMechanism::Sha256;
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = m.salted_password(b"pencil", &salt, 4096);
        let credential = ScramCredential::from_salted_password(m, salt, &salted, 4096);
        let first = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(first.username, "user");
        let exchange = ScramExchange {
            mechanism: m,
            credential,
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                           s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .into(),
            client_first: first,
        };
        let fin = exchange
            .finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .unwrap();
        assert_eq!(fin, b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert_eq!(
            exchange.finish(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                  p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVM="
            ),
            Err(ScramError::InvalidProof)
        );
    }

    #[test]
    fn derived_credentials_authenticate_their_password_only() {
        for m in ScramMechanism::ALL {
            let cred = ScramCredential::derive(m, "s3cret", 4096);
            assert!(cred.matches_password(m, "s3cret"));
            assert!(!cred.matches_password(m, "s3cre"));
            let bare = "n=al=2Cice,r=abc";
            let first = parse_client_first(format!("n,,{bare}").as_bytes()).unwrap();
            assert_eq!(first.username, "al,ice");
            let ex = ScramExchange::new(m, first.clone(), cred.clone());
            let sf = String::from_utf8(ex.server_first().to_vec()).unwrap();
            let (good, v) = client_final(m, "s3cret", bare, &sf, "biws");
            assert_eq!(ex.finish(good.as_bytes()).unwrap(), v, "{m}");
            let (bad, _) = client_final(m, "wrong", bare, &sf, "biws");
            assert_eq!(ex.finish(bad.as_bytes()), Err(ScramError::InvalidProof));
            // The channel binding must repeat the GS2 header as sent.
            let (other_cb, _) = client_final(m, "s3cret", bare, &sf, "eSws");
            assert_eq!(
                ex.finish(other_cb.as_bytes()),
                Err(ScramError::ChannelBinding)
            );
            // The nonce must be the combined one.
            let wrong_nonce = good.replacen("r=abc", "r=abd", 1);
            assert_eq!(ex.finish(wrong_nonce.as_bytes()), Err(ScramError::Nonce));
        }
    }

    /// A user without a credential shows the same salt on every exchange (derived from the
    /// secret and the name), and no proof passes.
    #[test]
    fn stand_in_credentials_are_stable_and_match_nothing() {
        let m = ScramMechanism::Sha512;
        let a = ScramCredential::stand_in(m, b"secret", "ghost", 4096);
        assert_eq!(a, ScramCredential::stand_in(m, b"secret", "ghost", 4096));
        assert_ne!(
            a.salt,
            ScramCredential::stand_in(m, b"secret", "other", 4096).salt
        );
        assert_eq!(a.salt.len(), SALT_LEN);
        assert!(!a.matches_password(m, "anything"));
        let first = parse_client_first(b"n,,n=ghost,r=xyz").unwrap();
        let ex = ScramExchange::new(m, first, a);
        let sf = String::from_utf8(ex.server_first().to_vec()).unwrap();
        let (fin, _) = client_final(m, "anything", "n=ghost,r=xyz", &sf, "biws");
        assert_eq!(ex.finish(fin.as_bytes()), Err(ScramError::InvalidProof));
    }

    /// Bound: client messages of more than MAX_MESSAGE bytes are refused before parsing; no
    /// malformed message panics.
    #[test]
    fn client_messages_are_bounded_and_never_panic() {
        let long = format!("n,,n=user,r={}", "x".repeat(MAX_MESSAGE));
        assert_eq!(
            parse_client_first(long.as_bytes()),
            Err(ScramError::TooLong(long.len()))
        );
        let cases: &[&[u8]] = &[
            b"",
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=user,r=abc",
            b"p=tls-unique,,n=user,r=abc",
            b"n,,m=ext,n=user,r=abc",
            b"n,,n=,r=abc",
            b"n,,n=us=er,r=abc",
            b"n,,n=us=2,r=abc",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=user,r=a\x01b",
            b"n,,n=user,r=abc,=x",
            b"n,,n=user,r=abc,junk",
            b"n,b=x,n=user,r=abc",
            b"\xff\xfe",
        ];
        for case in cases {
            assert!(parse_client_first(case).is_err(), "{case:?}");
        }
        assert_eq!(
            parse_client_first(b"n,,n=user,r=abc,tokenauth=true"),
            Err(ScramError::TokenAuth)
        );
        assert_eq!(
            parse_client_first(b"n,a=bob,n=user,r=abc"),
            Err(ScramError::AuthorizationId)
        );
        let ok = parse_client_first(b"y,a=user,n=user,r=abc,ext=1").unwrap();
        assert_eq!(ok.authzid.as_deref(), Some("user"));

        let m = ScramMechanism::Sha256;
        let ex = ScramExchange::new(
            m,
            parse_client_first(b"n,,n=user,r=abc").unwrap(),
            ScramCredential::derive(m, "pw", 4096),
        );
        let finals: &[&[u8]] = &[
            b"",
            b"p=",
            b"c=biws,p=",
            b"r=abc,p=AAAA",
            b"c=biws,p=AAAA",
            b"c=!!!,r=abc,p=AAAA",
            b"c=biws,r=abc,p=!!!",
            b"c=biws,r=abc,p=AAAA",
            b"\xff,p=AAAA",
        ];
        for case in finals {
            assert!(ex.finish(case).is_err(), "{case:?}");
        }
        let long_final = format!("c=biws,r=abc,p={}", "A".repeat(MAX_MESSAGE));
        assert_eq!(
            ex.finish(long_final.as_bytes()),
            Err(ScramError::TooLong(long_final.len()))
        );
    }

    #[test]
    fn credentials_round_trip_through_the_users_document() {
        let cred = ScramCredential::derive(ScramMechanism::Sha256, "pw", 4096);
        let json = serde_json::to_string(&cred).unwrap();
        assert!(!json.contains("pw\""));
        let back: ScramCredential = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cred);
        assert_eq!(
            ScramMechanism::from_kafka_type(2),
            Some(ScramMechanism::Sha512)
        );
        assert_eq!(ScramMechanism::from_kafka_type(0), None);
    }
}
