//! BuildKit's wire messages, written by hand from the published `.proto` files (no protoc
//! in the build): field numbers and names are the contract, so each struct names its
//! source. Only the messages berth's side of the API sends or reads are here.

#![allow(missing_docs)]

use std::collections::BTreeMap;

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

/// `control.proto` `SolveRequest`. `Definition` (LLB) and `FrontendInputs` are kept as
/// their raw bytes: berth's builder takes Dockerfiles only, and only needs to see them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SolveRequest {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub definition: Option<Vec<u8>>,
    #[prost(string, tag = "3")]
    pub exporter_deprecated: String,
    #[prost(btree_map = "string, string", tag = "4")]
    pub exporter_attrs_deprecated: BTreeMap<String, String>,
    #[prost(string, tag = "5")]
    pub session: String,
    #[prost(string, tag = "6")]
    pub frontend: String,
    #[prost(btree_map = "string, string", tag = "7")]
    pub frontend_attrs: BTreeMap<String, String>,
    #[prost(message, optional, tag = "8")]
    pub cache: Option<CacheOptions>,
    #[prost(string, repeated, tag = "9")]
    pub entitlements: Vec<String>,
    #[prost(btree_map = "string, bytes", tag = "10")]
    pub frontend_inputs: BTreeMap<String, Vec<u8>>,
    #[prost(bool, tag = "11")]
    pub internal: bool,
    #[prost(message, repeated, tag = "13")]
    pub exporters: Vec<Exporter>,
}

/// `control.proto` `CacheOptions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CacheOptions {
    #[prost(string, tag = "1")]
    pub export_ref_deprecated: String,
    #[prost(string, repeated, tag = "2")]
    pub import_refs_deprecated: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub exports: Vec<CacheOptionsEntry>,
    #[prost(message, repeated, tag = "5")]
    pub imports: Vec<CacheOptionsEntry>,
}

/// `control.proto` `CacheOptionsEntry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CacheOptionsEntry {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(btree_map = "string, string", tag = "2")]
    pub attrs: BTreeMap<String, String>,
}

/// `control.proto` `Exporter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Exporter {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(btree_map = "string, string", tag = "2")]
    pub attrs: BTreeMap<String, String>,
}

/// `control.proto` `SolveResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SolveResponse {
    #[prost(btree_map = "string, string", tag = "1")]
    pub exporter_response: BTreeMap<String, String>,
}

/// `control.proto` `StatusRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {
    #[prost(string, tag = "1")]
    pub r#ref: String,
}

/// `control.proto` `ListWorkersRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListWorkersRequest {
    #[prost(string, repeated, tag = "1")]
    pub filter: Vec<String>,
}

/// `control.proto` `ListWorkersResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ListWorkersResponse {
    #[prost(message, repeated, tag = "1")]
    pub record: Vec<WorkerRecord>,
}

/// `api/types/worker.proto` `WorkerRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkerRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(btree_map = "string, string", tag = "2")]
    pub labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "3")]
    pub platforms: Vec<Platform>,
    #[prost(message, optional, tag = "5")]
    pub buildkit_version: Option<BuildkitVersion>,
}

/// `solver/pb/ops.proto` `Platform`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Platform {
    #[prost(string, tag = "1")]
    pub architecture: String,
    #[prost(string, tag = "2")]
    pub os: String,
    #[prost(string, tag = "3")]
    pub variant: String,
}

/// `api/types/worker.proto` `BuildkitVersion`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BuildkitVersion {
    #[prost(string, tag = "1")]
    pub package: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub revision: String,
}

/// `control.proto` `InfoRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoRequest {}

/// `control.proto` `InfoResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InfoResponse {
    #[prost(message, optional, tag = "1")]
    pub buildkit_version: Option<BuildkitVersion>,
}

/// `control.proto` `DiskUsageRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DiskUsageRequest {
    #[prost(string, repeated, tag = "1")]
    pub filter: Vec<String>,
}

/// `control.proto` `DiskUsageResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DiskUsageResponse {
    #[prost(message, repeated, tag = "1")]
    pub record: Vec<UsageRecord>,
}

/// `control.proto` `UsageRecord`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UsageRecord {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub mutable: bool,
    #[prost(bool, tag = "3")]
    pub in_use: bool,
    #[prost(int64, tag = "4")]
    pub size: i64,
    #[prost(message, optional, tag = "6")]
    pub created_at: Option<Timestamp>,
    #[prost(message, optional, tag = "7")]
    pub last_used_at: Option<Timestamp>,
    #[prost(int64, tag = "8")]
    pub usage_count: i64,
    #[prost(string, tag = "9")]
    pub description: String,
    #[prost(string, tag = "10")]
    pub record_type: String,
    #[prost(bool, tag = "11")]
    pub shared: bool,
}

/// `control.proto` `PruneRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PruneRequest {
    #[prost(string, repeated, tag = "1")]
    pub filter: Vec<String>,
    #[prost(bool, tag = "2")]
    pub all: bool,
    #[prost(int64, tag = "3")]
    pub keep_duration: i64,
}

/// `control.proto` `BytesMessage` (the tunnel of `Control.Session`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesMessage {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

/// `frontend/gateway/pb/gateway.proto` `SolveRequest` (the LLB bridge's).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BridgeSolveRequest {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub definition: Option<Vec<u8>>,
    #[prost(string, tag = "2")]
    pub frontend: String,
    #[prost(btree_map = "string, string", tag = "3")]
    pub frontend_opt: BTreeMap<String, String>,
    #[prost(bool, tag = "5")]
    pub allow_result_return: bool,
    #[prost(bool, tag = "10")]
    pub r#final: bool,
    #[prost(message, repeated, tag = "12")]
    pub cache_imports: Vec<CacheOptionsEntry>,
    #[prost(btree_map = "string, bytes", tag = "13")]
    pub frontend_inputs: BTreeMap<String, Vec<u8>>,
    #[prost(bool, tag = "14")]
    pub evaluate: bool,
}

/// `gateway.proto` `SolveResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BridgeSolveResponse {
    #[prost(string, tag = "1")]
    pub r#ref: String,
    #[prost(message, optional, tag = "3")]
    pub result: Option<BridgeResult>,
}

/// `gateway.proto` `Result` (of its `oneof result`, only `ref` and `refs` are used).
#[derive(Clone, PartialEq, prost::Message)]
pub struct BridgeResult {
    #[prost(string, optional, tag = "1")]
    pub ref_deprecated: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub r#ref: Option<BridgeRef>,
    #[prost(message, optional, tag = "4")]
    pub refs: Option<BridgeRefMap>,
    #[prost(btree_map = "string, bytes", tag = "10")]
    pub metadata: BTreeMap<String, Vec<u8>>,
}

/// `gateway.proto` `RefMap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BridgeRefMap {
    #[prost(btree_map = "string, message", tag = "1")]
    pub refs: BTreeMap<String, BridgeRef>,
}

/// `gateway.proto` `Ref`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BridgeRef {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `gateway.proto` `ReturnRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReturnRequest {
    #[prost(message, optional, tag = "1")]
    pub result: Option<BridgeResult>,
    #[prost(message, optional, tag = "2")]
    pub error: Option<RpcStatus>,
}

/// `google.rpc.Status`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// `gateway.proto` `ReturnResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReturnResponse {}

/// `gateway.proto` `PingRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PingRequest {}

/// `gateway.proto` `PongResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PongResponse {
    #[prost(message, repeated, tag = "1")]
    pub frontend_api_caps: Vec<ApiCap>,
    #[prost(message, repeated, tag = "2")]
    pub llb_caps: Vec<ApiCap>,
    #[prost(message, repeated, tag = "3")]
    pub workers: Vec<WorkerRecord>,
}

/// `util/apicaps/pb/caps.proto` `APICap`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiCap {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub enabled: bool,
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

/// `session/auth/auth.proto` `CredentialsRequest` (package `moby.filesync.v1`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CredentialsRequest {
    #[prost(string, tag = "1")]
    pub host: String,
}

/// `session/auth/auth.proto` `CredentialsResponse`: a user name and password, or no user
/// name and an identity token as the secret.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CredentialsResponse {
    #[prost(string, tag = "1")]
    pub username: String,
    #[prost(string, tag = "2")]
    pub secret: String,
}

/// `session/sshforward/ssh.proto` `CheckAgentRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckAgentRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `session/sshforward/ssh.proto` `CheckAgentResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CheckAgentResponse {}
