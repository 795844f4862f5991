//! One io_uring worker's event loop: completions in, core actions out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};

use super::ops::{Done, Ring};
use crate::backend::{BackendError, WorkerSetup};
use crate::core::{Action, ConnId, Relay};
use crate::cross::CrossMsg;

/// Ring entries per worker.
const RING_ENTRIES: u32 = 1024;
/// The longest single wait, so the shutdown flag is seen even without a wake-up.
const MAX_WAIT: Duration = Duration::from_secs(1);
/// How long an exiting worker waits for its operations to complete.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A socket and what is in flight on it.
#[derive(Debug)]
struct UConn {
    sock: Socket,
    /// Operations in flight (the socket is closed only at zero).
    ops: u32,
    sending: bool,
    recv_armed: bool,
    /// The armed multishot receive, for cancelling it.
    recv_ud: Option<u64>,
    /// Back pressure: no receive is armed until resumed.
    paused: bool,
    connect_ud: Option<u64>,
    /// The core asked to close it: flush, then shut down.
    closing: bool,
    /// Shut down; the core has been told (or will be, at `finish`).
    dead: bool,
    core_knows_closed: bool,
    /// The last send's buffer, emptied, kept for the next: handed to the core as its output
    /// buffer so that queueing cells reuses its capacity instead of growing a new buffer
    /// from nothing (a realloc and a copy of everything queued at each doubling).
    spare: BytesMut,
}

impl UConn {
    fn new(sock: Socket) -> Self {
        Self {
            sock,
            ops: 0,
            sending: false,
            recv_armed: false,
            recv_ud: None,
            paused: false,
            connect_ud: None,
            closing: false,
            dead: false,
            core_knows_closed: false,
            spare: BytesMut::new(),
        }
    }

    fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

struct Worker {
    ring: Ring,
    core: Relay,
    conns: HashMap<ConnId, UConn>,
    listener: std::net::TcpListener,
    accept_ud: Option<u64>,
    accepting: bool,
    wake_rx: UnixStream,
    wake_ud: Option<u64>,
    mailbox: crossbeam_channel::Receiver<CrossMsg>,
    rearm: Vec<ConnId>,
}

/// Runs one worker until its drain completes.
pub(super) fn run(setup: WorkerSetup, wake_rx: UnixStream) -> Result<(), BackendError> {
    let ring = Ring::new(RING_ENTRIES)?;
    let core = Relay::new(
        setup.ctx,
        setup.index,
        crate::server::os_seed(),
        Instant::now(),
    );
    let mut w = Worker {
        ring,
        core,
        conns: HashMap::new(),
        listener: setup.listener,
        accept_ud: None,
        accepting: true,
        wake_rx,
        wake_ud: None,
        mailbox: setup.mailbox,
        rearm: Vec::new(),
    };
    w.arm_accept()?;
    w.wake_ud = Some(w.ring.wake(w.wake_rx.as_raw_fd())?);
    let _ = setup.started.send(());
    w.event_loop()?;
    w.exit();
    Ok(())
}

impl Worker {
    fn event_loop(&mut self) -> Result<(), BackendError> {
        let mut done = Vec::new();
        loop {
            let now = Instant::now();
            if now >= self.core.poll_timeout() {
                self.core.handle_timeout(now);
            }
            self.dispatch();
            if self.core.is_finished() {
                self.stop_accepting();
                if self.conns.is_empty() {
                    return Ok(());
                }
            }
            let wait = self.core.poll_timeout().saturating_duration_since(now);
            self.ring.submit_and_wait(wait.min(MAX_WAIT))?;
            self.ring.reap(&mut done);
            for d in done.drain(..) {
                self.on_done(d);
            }
            self.rearm_recvs();
        }
    }

    fn exit(&mut self) {
        self.stop_accepting();
        if let Some(ud) = self.wake_ud.take() {
            let _ = self.ring.cancel(ud);
        }
        let deadline = Instant::now() + EXIT_GRACE;
        let mut done = Vec::new();
        while self.ring.in_flight() > 0 && Instant::now() < deadline {
            if self
                .ring
                .submit_and_wait(Duration::from_millis(50))
                .is_err()
            {
                break;
            }
            self.ring.reap(&mut done);
            done.clear();
        }
    }

    fn arm_accept(&mut self) -> std::io::Result<()> {
        self.accept_ud = Some(self.ring.accept(self.listener.as_raw_fd())?);
        Ok(())
    }

    fn stop_accepting(&mut self) {
        self.accepting = false;
        if let Some(ud) = self.accept_ud.take() {
            let _ = self.ring.cancel(ud);
        }
    }

    /// Carries out the core's actions.
    fn dispatch(&mut self) {
        while let Some(action) = self.core.poll_action() {
            match action {
                Action::Flush(id) => self.try_send(id),
                Action::Close(id) => self.close(id),
                Action::Abort(id) => self.shut(id),
                Action::Connect { conn, addr } => self.connect(conn, addr),
                Action::PauseRead(id) => self.pause(id),
                Action::ResumeRead(id) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.paused = false;
                    }
                    self.arm_recv(id);
                }
            }
        }
    }

    fn try_send(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.sending || c.dead || c.connect_ud.is_some() {
            return;
        }
        let mut buf = std::mem::take(&mut c.spare);
        self.core.take_output(id, &mut buf);
        if buf.is_empty() {
            c.spare = buf;
            if c.closing {
                self.shut(id);
            }
            return;
        }
        match self.ring.send(id, c.fd(), buf) {
            Ok(_) => {
                c.sending = true;
                c.ops += 1;
            }
            Err(_) => self.fail(id),
        }
    }

    fn close(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.closing = true;
        if let Some(ud) = c.connect_ud {
            let _ = self.ring.cancel(ud);
            return;
        }
        self.try_send(id);
    }

    /// Shuts the socket down: operations on it complete, then `finish` closes it.
    fn shut(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.dead = true;
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
            if let Some(ud) = c.connect_ud {
                let _ = self.ring.cancel(ud);
            }
        }
        self.finish(id);
    }

    /// The connection broke: tell the core now, and shut it down.
    fn fail(&mut self, id: ConnId) {
        if let Some(c) = self.conns.get_mut(&id)
            && !c.core_knows_closed
        {
            c.core_knows_closed = true;
            self.core.handle_closed(Instant::now(), id);
        }
        self.shut(id);
    }

    /// Closes a dead socket once nothing is in flight on it.
    fn finish(&mut self, id: ConnId) {
        let Some(c) = self.conns.get(&id) else {
            return;
        };
        if !c.dead || c.ops > 0 {
            return;
        }
        if let Some(c) = self.conns.remove(&id)
            && !c.core_knows_closed
        {
            self.core.handle_closed(Instant::now(), id);
        }
    }

    fn connect(&mut self, id: ConnId, addr: SocketAddr) {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
            .and_then(|s| {
                s.set_nonblocking(true)?;
                s.set_tcp_nodelay(true)?;
                Ok(s)
            });
        let Ok(sock) = sock else {
            return self.core.handle_connect_failed(Instant::now(), id);
        };
        let mut c = UConn::new(sock);
        match self.ring.connect(id, c.fd(), addr.into()) {
            Ok(ud) => {
                c.connect_ud = Some(ud);
                c.ops = 1;
                self.conns.insert(id, c);
            }
            Err(_) => self.core.handle_connect_failed(Instant::now(), id),
        }
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Accepted { fd, more } => self.on_accept(fd, more),
            Done::Received {
                conn,
                res,
                bid,
                more,
            } => self.on_recv(conn, res, bid, more),
            Done::Sent { conn, res, buf } => self.on_sent(conn, res, buf),
            Done::Connected { conn, res } => self.on_connected(conn, res),
            Done::Woken { res } => self.on_wake(res),
            Done::ProvideFailed(res) => tracing::error!(res, "giving a receive buffer back failed"),
            Done::Other => {}
        }
        self.dispatch();
    }

    fn on_accept(&mut self, fd: Option<std::os::fd::OwnedFd>, more: bool) {
        if !more {
            self.accept_ud = None;
            if self.accepting && self.arm_accept().is_err() {
                tracing::error!("cannot re-arm accept");
            }
        }
        let Some(fd) = fd else { return };
        let sock = Socket::from(fd);
        let Some(peer) = sock.peer_addr().ok().and_then(|a| a.as_socket()) else {
            return;
        };
        let _ = sock.set_tcp_nodelay(true);
        let Some(id) = self.core.handle_accept(Instant::now(), peer.ip()) else {
            return;
        };
        self.conns.insert(id, UConn::new(sock));
        self.arm_recv(id);
    }

    fn arm_recv(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.recv_armed || c.dead || c.paused {
            return;
        }
        match self.ring.recv(id, c.fd()) {
            Ok(ud) => {
                c.recv_armed = true;
                c.recv_ud = Some(ud);
                c.ops += 1;
            }
            Err(_) => self.fail(id),
        }
    }

    /// Stops receiving on `id`: cancels the armed receive (its final completion, with
    /// `ECANCELED`, still arrives and is not an error) and arms none until resumed.
    fn pause(&mut self, id: ConnId) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.paused = true;
        if let Some(ud) = c.recv_ud.filter(|_| c.recv_armed)
            && self.ring.cancel(ud).is_err()
        {
            tracing::warn!("cannot cancel a receive: reading goes on");
        }
    }

    fn rearm_recvs(&mut self) {
        for id in std::mem::take(&mut self.rearm) {
            self.arm_recv(id);
        }
    }

    fn on_recv(&mut self, id: ConnId, res: i32, bid: Option<u16>, more: bool) {
        if let (Some(bid), Ok(len)) = (bid, usize::try_from(res)) {
            if self.conns.get(&id).is_some_and(|c| !c.dead) {
                let data = self.ring.received_mut(bid, len);
                self.core.handle_input_mut(Instant::now(), id, data);
            }
            if self.ring.provide(bid).is_err() {
                tracing::error!("cannot give a receive buffer back");
            }
        }
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if !more {
            c.recv_armed = false;
            c.recv_ud = None;
            c.ops -= 1;
        }
        let cancelled = res == -libc::ECANCELED && c.paused;
        if res == 0 || (res < 0 && res != -libc::ENOBUFS && !cancelled) {
            return self.fail(id);
        }
        if !more {
            self.rearm.push(id);
        }
        self.finish(id);
    }

    fn on_sent(&mut self, id: ConnId, res: i32, mut buf: BytesMut) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.sending = false;
        c.ops -= 1;
        let Ok(n) = usize::try_from(res) else {
            return self.fail(id);
        };
        buf.advance(n.min(buf.len()));
        if !buf.is_empty() && !c.dead {
            match self.ring.send(id, c.fd(), buf) {
                Ok(_) => {
                    c.sending = true;
                    c.ops += 1;
                }
                Err(_) => self.fail(id),
            }
            return;
        }
        buf.clear();
        c.spare = buf;
        if !c.dead {
            self.core.handle_writable(Instant::now(), id);
            self.dispatch();
            self.try_send(id);
        }
        self.finish(id);
    }

    fn on_connected(&mut self, id: ConnId, res: i32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.connect_ud = None;
        c.ops -= 1;
        if res < 0 || c.closing || c.dead {
            c.core_knows_closed = true;
            c.dead = true;
            self.core.handle_connect_failed(Instant::now(), id);
            return self.finish(id);
        }
        if self.core.handle_connected(Instant::now(), id) {
            self.arm_recv(id);
            self.try_send(id);
        } else {
            self.fail(id);
        }
    }

    fn on_wake(&mut self, res: i32) {
        self.wake_ud = None;
        for msg in self.mailbox.try_iter().take(crate::cross::MAILBOX_CAP) {
            self.core.handle_cross(Instant::now(), msg);
        }
        if self.core.shutdown_requested() {
            self.stop_accepting();
        }
        if res > 0 {
            match self.ring.wake(self.wake_rx.as_raw_fd()) {
                Ok(ud) => self.wake_ud = Some(ud),
                Err(_) => tracing::error!("cannot re-arm the waker"),
            }
        }
    }
}
