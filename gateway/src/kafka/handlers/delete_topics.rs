//! DeleteTopics: by name (versions up to 5; deletion by topic id is not advertised). The broker
//! deletes the topic with its offsets, groups and producer state.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use super::{str_bytes, Request};
use crate::broker::acl::{Operation, Resource};
use crate::broker::BrokerError;
use crate::kafka::errors;

pub async fn handle(req: &Request<'_>, r: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let names: Vec<_> = if req.version >= 6 {
        r.topics.into_iter().filter_map(|t| t.name).collect()
    } else {
        r.topic_names
    };
    let mut responses = Vec::with_capacity(names.len());
    for name in names {
        let outcome = if !req.may(Operation::Delete, Resource::Topic(name.0.as_str())) {
            Err(BrokerError::Unauthorized)
        } else {
            match req.topic(name.0.as_str()) {
                Ok(t) => req.broker().delete_topic(t.stream_id, t.id).await,
                Err(e) => Err(e),
            }
        };
        let out = DeletableTopicResult::default().with_name(Some(name));
        responses.push(match outcome {
            Ok(()) => out,
            Err(e) => {
                let (error, message) = errors::answer("delete topic failed", &e);
                let out = out.with_error_code(error);
                if req.version >= 5 {
                    out.with_error_message(Some(str_bytes(message)))
                } else {
                    out
                }
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
