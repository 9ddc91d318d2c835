//! Elements of our table's maps, added and deleted over a netfilter netlink socket: the
//! per-container part of published ports, kept off the `nft` binary so that a container's
//! start and stop cost a system call each instead of a process each (`nft -j -f -` takes
//! ~10 ms to start and parse; this takes microseconds).
//!
//! Written by hand on `netlink-sys` (already in the tree): only two messages are needed
//! (`NFT_MSG_NEWSETELEM` and `NFT_MSG_DELSETELEM` inside one batch), and the crates that
//! speak nf_tables natively either bind libnftnl (a C library to install) or bring a
//! netlink stack of their own for their whole rule model. The table, its maps and the
//! rules that read them are still made once with `nft` (see `nft`).

use std::io;

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

/// One element of a map: its key and the value it maps to, as the kernel stores them
/// (each field of a concatenation padded to 4 bytes, numbers in network order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    /// The key.
    pub key: Vec<u8>,
    /// The value (for a map; `None` for a plain set).
    pub data: Option<Vec<u8>>,
}

/// Adding or deleting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Add (an element already there with the same value is fine).
    Add,
    /// Delete (every element must be there, or nothing is deleted).
    Delete,
}

fn attr(buf: &mut Vec<u8>, typ: u16, payload: &[u8]) {
    let len = 4 + payload.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn nested(buf: &mut Vec<u8>, typ: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    fill(&mut inner);
    attr(buf, typ | NLA_F_NESTED, &inner);
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Appends one netlink message with an nfgenmsg header.
fn message(buf: &mut Vec<u8>, typ: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) {
    let len = 16 + 4 + attrs.len();
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.push(family);
    buf.push(0); // NFNETLINK_V0
    buf.extend_from_slice(&res_id.to_be_bytes());
    buf.extend_from_slice(attrs);
}

/// The bytes of one batch that applies `op` to the elements of each map in `maps`, all in
/// one transaction; returns them and the sequence numbers that will be acknowledged.
fn batch(table: &str, op: Op, maps: &[(&str, Vec<Elem>)], first_seq: u32) -> (Vec<u8>, Vec<u32>) {
    let mut buf = Vec::new();
    let mut seq = first_seq;
    message(&mut buf, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    let mut acked = Vec::new();
    let (msg, flags) = match op {
        Op::Add => (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK),
        Op::Delete => (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK),
    };
    for (set, elems) in maps.iter().filter(|(_, e)| !e.is_empty()) {
        seq = seq.wrapping_add(1);
        let mut a = Vec::new();
        attr(&mut a, NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
        attr(&mut a, NFTA_SET_ELEM_LIST_SET, &cstr(set));
        nested(&mut a, NFTA_SET_ELEM_LIST_ELEMENTS, |l| {
            for e in elems {
                nested(l, NFTA_LIST_ELEM, |el| {
                    nested(el, NFTA_SET_ELEM_KEY, |k| attr(k, NFTA_DATA_VALUE, &e.key));
                    if let (Some(d), Op::Add) = (&e.data, op) {
                        nested(el, NFTA_SET_ELEM_DATA, |k| attr(k, NFTA_DATA_VALUE, d));
                    }
                });
            }
        });
        message(&mut buf, (NFNL_SUBSYS_NFTABLES << 8) | msg, flags, seq, NFPROTO_INET, 0, &a);
        acked.push(seq);
    }
    seq = seq.wrapping_add(1);
    message(&mut buf, NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, 0, NFNL_SUBSYS_NFTABLES, &[]);
    (buf, acked)
}

/// A netfilter netlink socket kept open across transactions.
///
/// Why not one socket per transaction: when a netfilter netlink socket closes, nf_tables
/// waits for the release of every transaction committed so far (`NETLINK_URELEASE` →
/// `nf_tables_trans_destroy_flush_work`), and that release waits for an RCU grace period,
/// 10-15 ms on a busy host. Closing right after committing made every container's start
/// and stop wait that long; a socket that stays open leaves the release to the kernel's
/// worker.
#[derive(Debug, Default)]
pub struct Channel {
    /// The socket and the last sequence number used on it; `None` until first used and
    /// after an error (a socket with replies left unread is not used again).
    sock: std::sync::Mutex<Option<(Socket, u32)>>,
}

impl Channel {
    /// A channel that opens its socket at first use.
    pub fn new() -> Channel {
        Channel::default()
    }

    /// Applies `op` to elements of maps of the `inet` table `table` in one transaction:
    /// all of them or none. A kernel refusal comes back as the `io::Error` of its errno
    /// (`ENOENT` for a missing table, map or, on delete, element).
    pub fn apply(&self, table: &str, op: Op, maps: &[(&str, Vec<Elem>)]) -> io::Result<()> {
        if maps.iter().all(|(_, e)| e.is_empty()) {
            return Ok(());
        }
        let mut g = match self.sock.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (mut sock, seq) = match g.take() {
            Some(s) => s,
            None => (open()?, 0),
        };
        let (buf, acked) = batch(table, op, maps, seq.wrapping_add(1));
        let last = seq.wrapping_add(1).wrapping_add(acked.len() as u32 + 1);
        let r = exchange(&mut sock, &buf, acked);
        // After a refusal the kernel may still have replies queued for this batch.
        if r.is_ok() {
            *g = Some((sock, last));
        }
        r
    }
}

fn open() -> io::Result<Socket> {
    let mut sock = Socket::new(NETLINK_NETFILTER)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    Ok(sock)
}

/// Sends one batch and waits for the acknowledgement of each of `waiting`; replies to
/// other sequence numbers are skipped.
fn exchange(sock: &mut Socket, buf: &[u8], mut waiting: Vec<u32>) -> io::Result<()> {
    sock.send(buf, 0)?;
    let mut rbuf = vec![0u8; 16 * 1024];
    while !waiting.is_empty() {
        let n = sock.recv(&mut &mut rbuf[..], 0)?;
        let mut off = 0;
        while off + 16 <= n {
            let len = u32::from_ne_bytes(rbuf[off..off + 4].try_into().unwrap_or_default()) as usize;
            let typ = u16::from_ne_bytes(rbuf[off + 4..off + 6].try_into().unwrap_or_default());
            let seq = u32::from_ne_bytes(rbuf[off + 8..off + 12].try_into().unwrap_or_default());
            if typ == NLMSG_ERROR && off + 20 <= n && waiting.contains(&seq) {
                let code = i32::from_ne_bytes(rbuf[off + 16..off + 20].try_into().unwrap_or_default());
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                waiting.retain(|s| *s != seq);
            }
            if len < 16 {
                break;
            }
            off += len.next_multiple_of(4);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_framed_as_libnftnl_frames_it() {
        let e = Elem { key: vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0], data: Some(vec![172, 17, 0, 2]) };
        let (buf, acked) = batch("berth", Op::Add, &[("a", vec![e]), ("empty", vec![])], 7);
        assert_eq!(acked, vec![8], "one message per map with elements");
        // begin (20 bytes), the element message, end (20 bytes).
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), NFNL_MSG_BATCH_BEGIN);
        assert_eq!(&buf[18..20], &NFNL_SUBSYS_NFTABLES.to_be_bytes());
        let len = u32::from_ne_bytes(buf[20..24].try_into().unwrap()) as usize;
        assert_eq!(len % 4, 0);
        assert_eq!(u16::from_ne_bytes([buf[24], buf[25]]), 0x0a0c);
        assert_eq!(buf.len(), 20 + len + 20);
        assert_eq!(u16::from_ne_bytes([buf[20 + len + 4], buf[20 + len + 5]]), NFNL_MSG_BATCH_END);
        // table "berth\0" padded to 8, set "a\0" padded to 4.
        assert_eq!(&buf[40..50], &[10, 0, 1, 0, b'b', b'e', b'r', b't', b'h', 0]);
        let (del, _) = batch("berth", Op::Delete, &[("a", vec![Elem { key: vec![1; 8], data: Some(vec![2; 4]) }])], 1);
        assert!(del.len() < buf.len(), "a delete carries keys only");
    }
}
