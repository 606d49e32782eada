//! AlterUserScramCredentials: sets or removes Wharf users' SCRAM credentials from Kafka admin
//! clients. An upsertion carries the salt, iterations and salted password the client computed;
//! only StoredKey and ServerKey are kept. A name no user has becomes a new user (Active, no
//! permissions, no native password hash). Kafka's Alter on Cluster: the `manage_users`
//! permission. One result per user named, as Kafka answers: the first refusal among its
//! operations, else success.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::{str_bytes, Request};
use crate::broker::identity::ScramChangeError;
use crate::broker::scram::ScramMechanism;
use crate::broker::users::{validate_username, Action};
use crate::broker::BrokerError;

/// One operation of the request, in the order given (deletions first, as Kafka applies them).
enum Change {
    Delete(ScramMechanism),
    Upsert {
        mechanism: ScramMechanism,
        iterations: i32,
        salt: Vec<u8>,
        salted_password: Vec<u8>,
    },
}

type Refusal = (ResponseError, String);

pub async fn handle(
    req: &Request<'_>,
    body: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let broker = req.broker();
    // Users in first-named order, each with its changes or the first refusal.
    let mut users: Vec<(String, Result<Vec<Change>, Refusal>)> = Vec::new();
    // Where each name is in `users`: a request may name tens of thousands of users (the
    // guard's array bound), so no linear search per operation.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut add = |name: &str, change: Result<Change, Refusal>| {
        let i = *index.entry(name.to_string()).or_insert_with(|| {
            users.push((name.to_string(), Ok(Vec::new())));
            users.len() - 1
        });
        let entry = &mut users[i].1;
        let Ok(changes) = entry else { return };
        match change {
            Err(r) => *entry = Err(r),
            Ok(c) => {
                let m = match &c {
                    Change::Delete(m) | Change::Upsert { mechanism: m, .. } => *m,
                };
                if changes.iter().any(|o| match o {
                    Change::Delete(x) | Change::Upsert { mechanism: x, .. } => *x == m,
                }) {
                    *entry = Err((
                        ResponseError::DuplicateResource,
                        format!("a user's credential for {m} may be altered once per request"),
                    ));
                } else {
                    changes.push(c);
                }
            }
        }
    };
    for d in &body.deletions {
        add(d.name.as_str(), mechanism(d.mechanism).map(Change::Delete));
    }
    for u in body.upsertions {
        let change = mechanism(u.mechanism).map(|m| Change::Upsert {
            mechanism: m,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        });
        add(u.name.as_str(), change);
    }
    let allowed = broker.authorize(req.principal, Action::ManageUsers).is_ok();
    let mut results = Vec::with_capacity(users.len());
    for (name, changes) in users {
        let outcome = if !allowed {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                ResponseError::ClusterAuthorizationFailed.to_string(),
            ))
        } else {
            match changes {
                Err(r) => Err(r),
                Ok(changes) => apply(req, &name, changes).await,
            }
        };
        let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(name));
        results.push(match outcome {
            Ok(()) => result,
            Err((e, message)) => result
                .with_error_code(e.code())
                .with_error_message(Some(str_bytes(message))),
        });
    }
    AlterUserScramCredentialsResponse::default().with_results(results)
}

fn mechanism(t: i8) -> Result<ScramMechanism, Refusal> {
    ScramMechanism::from_kafka_type(t).ok_or_else(|| {
        (
            ResponseError::UnsupportedSaslMechanism,
            format!("unknown SCRAM mechanism type {t}"),
        )
    })
}

async fn apply(req: &Request<'_>, name: &str, changes: Vec<Change>) -> Result<(), Refusal> {
    validate_username(name).map_err(|e| (ResponseError::UnacceptableCredential, e.to_string()))?;
    let broker = req.broker();
    for c in changes {
        match c {
            Change::Delete(m) => broker
                .delete_scram_credential(name, m)
                .await
                .map_err(broker_refusal)?,
            Change::Upsert {
                mechanism,
                iterations,
                salt,
                salted_password,
            } => {
                broker
                    .upsert_scram_credential(name, mechanism, salt, salted_password, iterations)
                    .await
                    .map_err(|e| match e {
                        ScramChangeError::Broker(b) => broker_refusal(b),
                        other => (ResponseError::UnacceptableCredential, other.to_string()),
                    })?;
            }
        }
    }
    Ok(())
}

fn broker_refusal(e: BrokerError) -> Refusal {
    match e {
        BrokerError::NoScramCredential { .. } | BrokerError::UserNotFound(_) => {
            (ResponseError::ResourceNotFound, e.to_string())
        }
        BrokerError::InvalidUsername => (ResponseError::UnacceptableCredential, e.to_string()),
        other => {
            other.log_if_internal("AlterUserScramCredentials");
            (
                crate::kafka::errors::broker_error(&other),
                other.client_message(),
            )
        }
    }
}
