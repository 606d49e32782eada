//! AlterUserScramCredentials: sets or removes Wharf users' SCRAM credentials from Kafka admin
//! clients. An upsertion carries the salt, iterations and salted password the client computed;
//! only StoredKey and ServerKey are kept. A name no user has becomes a new user (Active, no
//! permissions, no native password hash). The broker authorizes (Kafka's Alter on Cluster: the
//! `manage_users` permission) and applies the whole request in one durable change
//! ([`crate::broker::Broker::alter_scram_credentials`]). One result per user named, as Kafka
//! answers: the first refusal among its operations, else success. Changing root's credentials
//! by anyone but root is answered CLUSTER_AUTHORIZATION_FAILED for that user.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};

use super::{str_bytes, Request};
use crate::broker::identity::{ScramChange, ScramChangeError};
use crate::broker::scram::ScramMechanism;
use crate::broker::BrokerError;

type Change = ScramChange;

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
    let asked: Vec<(String, Vec<Change>)> = users
        .iter()
        .filter_map(|(name, c)| c.as_ref().ok().map(|c| (name.clone(), c.clone())))
        .collect();
    let mut applied = match broker.alter_scram_credentials(req.principal, asked).await {
        Ok(outcomes) => outcomes
            .into_iter()
            .map(|o| o.map_err(change_refusal))
            .collect(),
        Err(e) => {
            let refusal = broker_refusal(e);
            vec![Err(refusal); users.len()]
        }
    }
    .into_iter();
    let mut results = Vec::with_capacity(users.len());
    for (name, changes) in users {
        let outcome = match changes {
            Err(r) => Err(r),
            Ok(_) => applied.next().unwrap_or(Ok(())),
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

fn change_refusal(e: ScramChangeError) -> Refusal {
    match e {
        ScramChangeError::Broker(b) => broker_refusal(b),
        other => (ResponseError::UnacceptableCredential, other.to_string()),
    }
}

fn broker_refusal(e: BrokerError) -> Refusal {
    match e {
        BrokerError::NoScramCredential { .. } | BrokerError::UserNotFound(_) => {
            (ResponseError::ResourceNotFound, e.to_string())
        }
        BrokerError::InvalidUsername => (ResponseError::UnacceptableCredential, e.to_string()),
        BrokerError::Unauthorized | BrokerError::CannotChangeRootCredentials => {
            (ResponseError::ClusterAuthorizationFailed, e.to_string())
        }
        BrokerError::TooManyNewUsers(_) => (ResponseError::PolicyViolation, e.to_string()),
        other => {
            other.log_if_internal("AlterUserScramCredentials");
            (
                crate::kafka::errors::broker_error(&other),
                other.client_message(),
            )
        }
    }
}
