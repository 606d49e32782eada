//! DeleteTopics: by name (versions up to 5; deletion by topic id is not advertised).

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use super::{str_bytes, Request};
use crate::kafka::errors;

pub fn handle(req: &Request<'_>, r: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let names: Vec<_> = if req.version >= 6 {
        r.topics.into_iter().filter_map(|t| t.name).collect()
    } else {
        r.topic_names
    };
    let responses = names
        .into_iter()
        .map(|name| {
            let outcome = req
                .topic(name.0.as_str())
                .and_then(|t| req.broker().delete_topic(t.stream_id, t.id).map(|()| t));
            let out = DeletableTopicResult::default().with_name(Some(name));
            match outcome {
                Ok(t) => {
                    req.broker()
                        .producers
                        .forget(|k| !(k.stream == t.stream_id && k.topic == t.id));
                    out
                }
                Err(e) => {
                    let out = out.with_error_code(errors::for_broker(&e));
                    if req.version >= 5 {
                        out.with_error_message(Some(str_bytes(e.to_string())))
                    } else {
                        out
                    }
                }
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
