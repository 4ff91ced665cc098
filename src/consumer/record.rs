//! A record as the runtime handles it, detached from the Kafka client, and
//! its decoding into an [`Event`].

use prost::Message;
use uuid::Uuid;

use super::{Event, HandleError};
use crate::{proto::v1::EventEnvelope, trace::TraceContext};

/// One Kafka record (or a dead letter read back from the database).
#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// The key as text (keys are order ids); lossy for a malformed key.
    pub(crate) fn key_text(&self) -> String {
        self.key
            .as_deref()
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .unwrap_or_default()
    }

    /// Headers as a flat JSON object of (lossy) strings.
    pub(crate) fn headers_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.clone(),
                    String::from_utf8_lossy(value).into_owned().into(),
                )
            })
            .collect();
        map.into()
    }

    /// Headers back from their JSON form.
    pub(crate) fn headers_from_json(value: &serde_json::Value) -> Vec<(String, Vec<u8>)> {
        value
            .as_object()
            .map(|map| {
                map.iter()
                    .map(|(name, value)| {
                        let text = value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned);
                        (name.clone(), text.into_bytes())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Decodes the envelope; anything malformed is a permanent failure, and
    /// so is a payload type this build does not know (see [`classify`](Self::classify)
    /// for the live path, which acknowledges those instead).
    pub(crate) fn decode(&self) -> Result<Event, HandleError> {
        match self.classify()? {
            Decoded::Event(event) => Ok(*event),
            Decoded::Unknown(header) => Err(HandleError::Permanent(format!(
                "event type {:?} is not known to this build",
                header.event_type
            ))),
        }
    }

    /// Decodes the envelope into an event, or into its header alone when
    /// the payload is of a type this build does not know (an envelope
    /// written by a newer version: rolling upgrades); anything malformed is
    /// a permanent failure.
    pub(crate) fn classify(&self) -> Result<Decoded, HandleError> {
        let envelope = EventEnvelope::decode(self.payload.as_slice())
            .map_err(|e| HandleError::Permanent(format!("undecodable event envelope: {e}")))?;
        let event_id = Uuid::parse_str(&envelope.event_id).map_err(|e| {
            HandleError::Permanent(format!("malformed event_id {:?}: {e}", envelope.event_id))
        })?;
        if envelope.aggregate_id.is_empty() || envelope.aggregate_version == 0 {
            return Err(HandleError::Permanent(
                "event envelope without aggregate id or version".into(),
            ));
        }
        let Some(payload) = envelope.payload.clone() else {
            return Ok(Decoded::Unknown(Header {
                event_id,
                event_type: envelope.event_type,
                aggregate_id: envelope.aggregate_id,
                version: envelope.aggregate_version,
            }));
        };
        let trace = TraceContext::from_headers(
            self.headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_slice())),
        );
        Ok(Decoded::Event(Box::new(Event {
            event_id,
            aggregate_id: envelope.aggregate_id.clone(),
            version: envelope.aggregate_version,
            payload,
            envelope,
            trace,
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
        })))
    }

    /// The event id the envelope carries, read leniently.
    pub(crate) fn event_id(&self) -> Option<Uuid> {
        event_id_of(&self.payload)
    }

    /// What the envelope says of its aggregate, read leniently (for a
    /// record that cannot be handled): its id and version when present.
    pub(crate) fn aggregate(&self) -> Option<(String, u64)> {
        let envelope = EventEnvelope::decode(self.payload.as_slice()).ok()?;
        (!envelope.aggregate_id.is_empty() && envelope.aggregate_version > 0)
            .then_some((envelope.aggregate_id, envelope.aggregate_version))
    }
}

/// The event id of an encoded envelope, if it has a well-formed one.
pub(crate) fn event_id_of(payload: &[u8]) -> Option<Uuid> {
    let envelope = EventEnvelope::decode(payload).ok()?;
    Uuid::parse_str(&envelope.event_id).ok()
}

/// A record decoded for the live path.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// An event this build knows.
    Event(Box<Event>),
    /// A well-formed envelope whose payload type this build does not know.
    Unknown(Header),
}

impl Decoded {
    /// The aggregate and version the record is about.
    pub(crate) fn aggregate(&self) -> (&str, u64) {
        match self {
            Self::Event(event) => (&event.aggregate_id, event.version),
            Self::Unknown(header) => (&header.aggregate_id, header.version),
        }
    }
}

/// The envelope of an event of an unknown type.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub event_id: Uuid,
    pub event_type: String,
    pub aggregate_id: String,
    pub version: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::{OrderCancelled, event_envelope::Payload};

    fn record(payload: Vec<u8>) -> Record {
        Record {
            topic: "orderly.order.v1".into(),
            partition: 0,
            offset: 7,
            key: Some(b"k".to_vec()),
            payload,
            headers: vec![("event_type".into(), b"OrderCancelled".to_vec())],
        }
    }

    #[test]
    fn garbage_is_a_permanent_failure() {
        let error = record(vec![0xff, 0xff, 0xff])
            .decode()
            .expect_err("garbage");
        assert!(matches!(error, HandleError::Permanent(_)), "{error:?}");
        let empty = EventEnvelope::default().encode_to_vec();
        assert!(matches!(
            record(empty).decode(),
            Err(HandleError::Permanent(_))
        ));
    }

    #[test]
    fn an_unknown_payload_type_keeps_its_header() {
        let envelope = EventEnvelope {
            event_id: Uuid::now_v7().to_string(),
            event_type: "OrderTeleported".into(),
            aggregate_id: "a".into(),
            aggregate_version: 3,
            payload: None,
            ..Default::default()
        };
        let record = record(envelope.encode_to_vec());
        match record.classify() {
            Ok(Decoded::Unknown(header)) => {
                assert_eq!((header.aggregate_id.as_str(), header.version), ("a", 3));
            }
            other => panic!("expected an unknown type, got {other:?}"),
        }
        assert!(matches!(record.decode(), Err(HandleError::Permanent(_))));
        assert_eq!(record.aggregate(), Some(("a".to_owned(), 3)));
    }

    #[test]
    fn a_well_formed_envelope_decodes() {
        let id = Uuid::now_v7();
        let envelope = EventEnvelope {
            event_id: id.to_string(),
            aggregate_id: "a".into(),
            aggregate_version: 2,
            payload: Some(Payload::OrderCancelled(OrderCancelled::default())),
            ..Default::default()
        };
        let event = record(envelope.encode_to_vec()).decode().expect("decodes");
        assert_eq!(event.event_id, id);
        assert_eq!(event.version, 2);
        assert_eq!(event.offset, 7);
    }

    #[test]
    fn headers_survive_their_json_form() {
        let original = record(Vec::new());
        let back = Record::headers_from_json(&original.headers_json());
        assert_eq!(back, original.headers);
    }
}
