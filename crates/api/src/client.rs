//! Async Engine API client over a unix socket (to be written).
pub struct Client;
#[derive(Debug)]
pub struct ClientError;
