//! The ring and the operations in flight on it: the only place that hands memory and file
//! descriptors to the kernel.
//!
//! Ownership rule (STYLE.md, "Unsafe"): every buffer, address or fd an operation refers to is
//! owned by that operation's entry in [`Ring::ops`] (or, for received data, by the provided
//! buffer pool the ring owns) from submission until its final completion is reaped. Entries
//! are boxed where the kernel holds a pointer into them, so moving the table moves nothing the
//! kernel sees. Sockets are never closed while an operation on them is in flight: the worker
//! shuts a socket down, waits for its operations to complete, and only then drops it. If the
//! ring must be dropped with operations still in flight, dropping it leaks their memory
//! rather than free it under the kernel.
#![expect(
    unsafe_code,
    reason = "io_uring submission takes raw pointers the kernel uses until completion"
)]

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use bytes::BytesMut;
use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::core::ConnId;

/// Bytes of one provided receive buffer.
pub(super) const RECV_BUF_LEN: usize = 16 * 1024;
/// Provided receive buffers per worker.
pub(super) const RECV_BUFS: u16 = 256;
/// The buffer group of the receive pool.
const BUF_GROUP: u16 = 0;

/// What an operation in flight owns and who it is for.
#[derive(Debug)]
enum Op {
    /// Multishot accept on the listener.
    Accept,
    /// Multishot receive with buffer selection.
    Recv(ConnId),
    /// A send of `buf` (the kernel reads from its heap memory, which does not move).
    Send(ConnId, BytesMut),
    /// A connect to `_addr` (boxed: the kernel reads it through a pointer).
    Connect {
        conn: ConnId,
        _addr: Box<socket2::SockAddr>,
    },
    /// A receive on the waker socket into `_buf` (boxed for the same reason).
    Wake { _buf: Box<[u8; 64]> },
    /// Giving buffers back to the pool.
    Provide,
    /// A cancellation request.
    Cancel,
}

/// A completion, with what its operation owned handed back.
#[derive(Debug)]
pub(super) enum Done {
    /// A connection was accepted (`more`: the accept is still armed).
    Accepted { fd: Option<OwnedFd>, more: bool },
    /// Data for `conn` in provided buffer `bid`, or an end (`res <= 0`).
    Received {
        conn: ConnId,
        res: i32,
        bid: Option<u16>,
        more: bool,
    },
    /// A send finished: `res` bytes of `buf` went out.
    Sent {
        conn: ConnId,
        res: i32,
        buf: BytesMut,
    },
    /// A connect finished.
    Connected { conn: ConnId, res: i32 },
    /// The waker fired (or failed).
    Woken { res: i32 },
    /// Giving buffers back failed (a kernel without provided buffers, or a bug).
    ProvideFailed(i32),
    /// Bookkeeping (provide, cancel).
    Other,
}

/// One worker's ring, its operations in flight and its receive buffer pool.
pub(super) struct Ring {
    ring: IoUring,
    ops: HashMap<u64, Op>,
    next: u64,
    pool: Box<[u8]>,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ring({} ops in flight)", self.ops.len())
    }
}

impl Ring {
    /// Sets up a ring and provides the receive pool to the kernel.
    pub(super) fn new(entries: u32) -> std::io::Result<Self> {
        let ring = IoUring::builder()
            .setup_cqsize(entries * 4)
            .build(entries)?;
        if !ring.params().is_feature_ext_arg() || !ring.params().is_feature_fast_poll() {
            return Err(std::io::Error::other(
                "kernel lacks io_uring EXT_ARG or FAST_POLL",
            ));
        }
        let mut me = Self {
            ring,
            ops: HashMap::new(),
            next: 1,
            pool: vec![0u8; RECV_BUF_LEN * usize::from(RECV_BUFS)].into_boxed_slice(),
        };
        me.provide_range(0, RECV_BUFS)?;
        me.ring.submit_and_wait(1)?;
        let mut done = Vec::new();
        me.reap(&mut done);
        if let Some(Done::ProvideFailed(res)) = done.first() {
            return Err(std::io::Error::from_raw_os_error(-res));
        }
        Ok(me)
    }

    /// Operations in flight.
    pub(super) fn in_flight(&self) -> usize {
        self.ops.len()
    }

    /// The received bytes in provided buffer `bid`, writable: the core opens and peels cells
    /// where they lie. The buffer is ours (its completion has been reaped) until
    /// [`Ring::provide`] gives it back, so no kernel write can race these bytes.
    pub(super) fn received_mut(&mut self, bid: u16, len: usize) -> &mut [u8] {
        let start = usize::from(bid) * RECV_BUF_LEN;
        self.pool
            .get_mut(start..start + len.min(RECV_BUF_LEN))
            .unwrap_or_default()
    }

    /// Gives buffer `bid` back to the kernel.
    pub(super) fn provide(&mut self, bid: u16) -> std::io::Result<()> {
        self.provide_range(bid, 1)
    }

    fn provide_range(&mut self, bid: u16, n: u16) -> std::io::Result<()> {
        let start = usize::from(bid) * RECV_BUF_LEN;
        let Some(mem) = self
            .pool
            .get_mut(start..start + usize::from(n) * RECV_BUF_LEN)
        else {
            return Err(std::io::Error::other("buffer id out of range"));
        };
        let len = i32::try_from(RECV_BUF_LEN).map_err(std::io::Error::other)?;
        let sqe = opcode::ProvideBuffers::new(mem.as_mut_ptr(), len, n, BUF_GROUP, bid).build();
        // The pool is owned by this ring, never reallocated, and outlives every operation
        // (teardown leaks it if any is still in flight).
        // SAFETY: the pool outlives the operation (above); buffers [bid, bid + n) are not in
        // the kernel's hands (they are new, or their data was consumed).
        unsafe { self.push(sqe, Op::Provide) }.map(|_| ())
    }

    /// Arms multishot accept on `listener`.
    pub(super) fn accept(&mut self, listener: RawFd) -> std::io::Result<u64> {
        let sqe = opcode::AcceptMulti::new(types::Fd(listener)).build();
        // SAFETY: the listener fd stays open until the worker exits, after this operation
        // completes or the ring is torn down; the operation owns no memory.
        unsafe { self.push(sqe, Op::Accept) }
    }

    /// Arms multishot receive on `fd` for `conn`, into the provided pool.
    pub(super) fn recv(&mut self, conn: ConnId, fd: RawFd) -> std::io::Result<u64> {
        let sqe = opcode::RecvMulti::new(types::Fd(fd), BUF_GROUP).build();
        // SAFETY: data lands in the pool, owned by the ring (see `provide_range`); the worker
        // keeps `fd` open until this operation's final completion.
        unsafe { self.push(sqe, Op::Recv(conn)) }
    }

    /// Sends `buf` on `fd` for `conn`; `buf` comes back in [`Done::Sent`].
    pub(super) fn send(&mut self, conn: ConnId, fd: RawFd, buf: BytesMut) -> std::io::Result<u64> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let sqe = opcode::Send::new(types::Fd(fd), buf.as_ptr(), len).build();
        // SAFETY: `buf` moves into the op table and is returned only at completion; its heap
        // memory does not move when the `BytesMut` value does. The worker keeps `fd` open.
        unsafe { self.push(sqe, Op::Send(conn, buf)) }
    }

    /// Connects `fd` to `addr` for `conn`.
    pub(super) fn connect(
        &mut self,
        conn: ConnId,
        fd: RawFd,
        addr: socket2::SockAddr,
    ) -> std::io::Result<u64> {
        let addr = Box::new(addr);
        let sqe = opcode::Connect::new(types::Fd(fd), addr.as_ptr().cast(), addr.len()).build();
        // SAFETY: the boxed address lives in the op table until completion; the worker keeps
        // `fd` open until then.
        unsafe { self.push(sqe, Op::Connect { conn, _addr: addr }) }
    }

    /// Arms a receive on the waker socket `fd`.
    pub(super) fn wake(&mut self, fd: RawFd) -> std::io::Result<u64> {
        let mut buf = Box::new([0u8; 64]);
        let sqe = opcode::Recv::new(types::Fd(fd), buf.as_mut_ptr(), 64).build();
        // SAFETY: the boxed buffer lives in the op table until completion; the waker socket
        // lives as long as the worker.
        unsafe { self.push(sqe, Op::Wake { _buf: buf }) }
    }

    /// Asks the kernel to cancel operation `user_data` (its completion still arrives).
    pub(super) fn cancel(&mut self, user_data: u64) -> std::io::Result<u64> {
        let sqe = opcode::AsyncCancel::new(user_data).build();
        // SAFETY: a cancellation refers to no memory or fd.
        unsafe { self.push(sqe, Op::Cancel) }
    }

    /// Submits, then waits for a completion or `timeout`.
    pub(super) fn submit_and_wait(&mut self, timeout: std::time::Duration) -> std::io::Result<()> {
        let ts = types::Timespec::from(timeout);
        let args = types::SubmitArgs::new().timespec(&ts);
        match self.ring.submitter().submit_with_args(1, &args) {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Takes every completion that is ready.
    pub(super) fn reap(&mut self, out: &mut Vec<Done>) {
        let cqes: Vec<cqueue::Entry> = self.ring.completion().collect();
        for cqe in cqes {
            out.push(self.complete(&cqe));
        }
    }

    fn complete(&mut self, cqe: &cqueue::Entry) -> Done {
        let (ud, res, flags) = (cqe.user_data(), cqe.result(), cqe.flags());
        let more = cqueue::more(flags);
        let op = if more {
            match self.ops.get(&ud) {
                Some(Op::Accept) => Op::Accept,
                Some(Op::Recv(c)) => Op::Recv(*c),
                _ => Op::Cancel,
            }
        } else {
            self.ops.remove(&ud).unwrap_or(Op::Cancel)
        };
        match op {
            Op::Accept => {
                // SAFETY: a successful accept completion carries a new fd that nothing else
                // owns; wrapping it makes this process close it exactly once.
                let fd = (res >= 0).then(|| unsafe { OwnedFd::from_raw_fd(res) });
                Done::Accepted { fd, more }
            }
            Op::Recv(conn) => Done::Received {
                conn,
                res,
                bid: cqueue::buffer_select(flags),
                more,
            },
            Op::Send(conn, buf) => Done::Sent { conn, res, buf },
            Op::Connect { conn, .. } => Done::Connected { conn, res },
            Op::Wake { .. } => Done::Woken { res },
            Op::Provide if res < 0 => Done::ProvideFailed(res),
            Op::Provide | Op::Cancel => Done::Other,
        }
    }

    /// Pushes `sqe`, recording `op` as its owner; submits first if the queue is full.
    ///
    /// # Safety
    /// Every pointer and fd in `sqe` must stay valid until the operation's final completion:
    /// memory owned by `op` (which the table keeps until then) or by the ring, and fds the
    /// worker keeps open until then.
    unsafe fn push(&mut self, sqe: squeue::Entry, op: Op) -> std::io::Result<u64> {
        let ud = self.next;
        self.next += 1;
        let sqe = sqe.user_data(ud);
        self.ops.insert(ud, op);
        for _ in 0..2 {
            // SAFETY: the caller guarantees the entry's resources (see `# Safety`), and `op`
            // is in the table before the kernel can see the entry.
            if unsafe { self.ring.submission().push(&sqe) }.is_ok() {
                return Ok(ud);
            }
            self.ring.submit()?;
        }
        self.ops.remove(&ud);
        Err(std::io::Error::other("submission queue full"))
    }
}

impl Drop for Ring {
    /// Memory of operations still in flight is leaked, not freed: the kernel may still write
    /// to it until the ring (dropped after this) is gone.
    fn drop(&mut self) {
        if self.ops.is_empty() {
            return;
        }
        tracing::warn!(
            in_flight = self.ops.len(),
            "ring dropped with operations in flight"
        );
        std::mem::forget(std::mem::take(&mut self.ops));
        std::mem::forget(std::mem::take(&mut self.pool));
    }
}
