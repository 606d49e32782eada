//! DescribeUserScramCredentials: which SCRAM mechanisms (and iterations) Wharf users have
//! credentials for. Kafka's Describe on Cluster, which is the `read_users` permission.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::{str_bytes, Request};
use crate::broker::User;

pub fn handle(
    req: &Request<'_>,
    body: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let broker = req.broker();
    let Ok(users) = broker.scram_users(req.principal) else {
        let e = ResponseError::ClusterAuthorizationFailed;
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(str_bytes(e.to_string())));
    };
    let results = match body.users.filter(|u| !u.is_empty()) {
        // No names: every user who has a credential.
        None => users.iter().map(described).collect(),
        Some(names) => {
            let mut times: BTreeMap<&str, usize> = BTreeMap::new();
            for n in &names {
                *times.entry(n.name.as_str()).or_default() += 1;
            }
            let by_name: std::collections::HashMap<&str, &User> =
                users.iter().map(|u| (u.username.as_str(), u)).collect();
            let mut results = Vec::new();
            for (name, count) in times {
                let result = if count > 1 {
                    failed(
                        name,
                        ResponseError::DuplicateResource,
                        "cannot describe the same user twice in one request",
                    )
                } else {
                    match by_name.get(name) {
                        Some(u) => described(u),
                        None => failed(
                            name,
                            ResponseError::ResourceNotFound,
                            "attempt to describe a user credential that does not exist",
                        ),
                    }
                };
                results.push(result);
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn described(user: &User) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(str_bytes(user.username.clone()))
        .with_credential_infos(
            user.scram
                .iter()
                .map(|(m, c)| {
                    CredentialInfo::default()
                        .with_mechanism(m.kafka_type())
                        .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX))
                })
                .collect(),
        )
}

fn failed(name: &str, e: ResponseError, message: &str) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(str_bytes(name))
        .with_error_code(e.code())
        .with_error_message(Some(str_bytes(message)))
}
