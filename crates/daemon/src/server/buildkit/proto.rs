//! BuildKit's wire messages, written by hand from the published `.proto` files (no protoc
//! in the build): field numbers and names are the contract, so each struct names its
//! source. Only the messages berth's side of the API sends or reads are here.

#![allow(missing_docs)]

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
    }
}

/// fsutil `types/stat.proto`: one file of a synced directory. `mode` is Go's
/// `os.FileMode` (type bits at the top), not the unix mode.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Stat {
    #[prost(string, tag = "1")]
    pub path: String,
    #[prost(uint32, tag = "2")]
    pub mode: u32,
    #[prost(uint32, tag = "3")]
    pub uid: u32,
    #[prost(uint32, tag = "4")]
    pub gid: u32,
    #[prost(int64, tag = "5")]
    pub size: i64,
    #[prost(int64, tag = "6")]
    pub mod_time: i64,
    #[prost(string, tag = "7")]
    pub linkname: String,
    #[prost(int64, tag = "8")]
    pub devmajor: i64,
    #[prost(int64, tag = "9")]
    pub devminor: i64,
    #[prost(btree_map = "string, bytes", tag = "10")]
    pub xattrs: std::collections::BTreeMap<String, Vec<u8>>,
}

/// fsutil `types/wire.proto` `Packet.PacketType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PacketType {
    Stat = 0,
    Req = 1,
    Data = 2,
    Fin = 3,
    Err = 4,
}

/// fsutil `types/wire.proto` `Packet`: the unit of the file-sync stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Packet {
    #[prost(enumeration = "PacketType", tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub stat: Option<Stat>,
    #[prost(uint32, tag = "3")]
    pub id: u32,
    #[prost(bytes = "vec", tag = "4")]
    pub data: Vec<u8>,
}

/// `session/secrets/secrets.proto` `GetSecretRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSecretRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(btree_map = "string, string", tag = "2")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// `session/secrets/secrets.proto` `GetSecretResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetSecretResponse {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

/// `api/services/control/control.proto` `StatusResponse`: one batch of progress.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, repeated, tag = "1")]
    pub vertexes: Vec<Vertex>,
    #[prost(message, repeated, tag = "2")]
    pub statuses: Vec<VertexStatus>,
    #[prost(message, repeated, tag = "3")]
    pub logs: Vec<VertexLog>,
}

/// `control.proto` `Vertex`: one step of the build graph.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Vertex {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(string, repeated, tag = "2")]
    pub inputs: Vec<String>,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(bool, tag = "4")]
    pub cached: bool,
    #[prost(message, optional, tag = "5")]
    pub started: Option<Timestamp>,
    #[prost(message, optional, tag = "6")]
    pub completed: Option<Timestamp>,
    #[prost(string, tag = "7")]
    pub error: String,
}

/// `control.proto` `VertexStatus`: a sub-task of a vertex with a counter (a transfer).
#[derive(Clone, PartialEq, prost::Message)]
pub struct VertexStatus {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub vertex: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(int64, tag = "4")]
    pub current: i64,
    #[prost(int64, tag = "5")]
    pub total: i64,
    #[prost(message, optional, tag = "6")]
    pub timestamp: Option<Timestamp>,
    #[prost(message, optional, tag = "7")]
    pub started: Option<Timestamp>,
    #[prost(message, optional, tag = "8")]
    pub completed: Option<Timestamp>,
}

/// `control.proto` `VertexLog`: output of a vertex (stream 1 stdout, 2 stderr).
#[derive(Clone, PartialEq, prost::Message)]
pub struct VertexLog {
    #[prost(string, tag = "1")]
    pub vertex: String,
    #[prost(message, optional, tag = "2")]
    pub timestamp: Option<Timestamp>,
    #[prost(int64, tag = "3")]
    pub stream: i64,
    #[prost(bytes = "vec", tag = "4")]
    pub msg: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn packets_encode_as_fsutil_does() {
        // Bytes of a PACKET_REQ for id 7, and of a STAT for "a" (mode 0644), as Go's
        // generated code writes them.
        let req = Packet { r#type: PacketType::Req as i32, id: 7, ..Default::default() };
        assert_eq!(req.encode_to_vec(), [0x08, 0x01, 0x18, 0x07]);
        let stat = Packet {
            r#type: PacketType::Stat as i32,
            stat: Some(Stat { path: "a".into(), mode: 0o644, ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(stat.encode_to_vec(), [0x12, 0x06, 0x0a, 0x01, b'a', 0x10, 0xa4, 0x03]);
        assert_eq!(Packet::decode(&stat.encode_to_vec()[..]).unwrap(), stat);
    }
}
