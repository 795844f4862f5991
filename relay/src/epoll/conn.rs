//! One connection's task: read into the core, write what the core queued, close on request.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use ournet_proto::link::HANDSHAKE_TIMEOUT;
use tokio::net::TcpStream;

use super::{ConnIo, Worker, dispatch};
use crate::core::ConnId;

/// Reads per readiness event before yielding to other connections.
const READS_PER_WAKE: usize = 4;

/// Connects an outbound relay link, then runs it.
pub(super) async fn connect(w: Rc<Worker>, id: ConnId, addr: SocketAddr) {
    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(addr)).await;
    let Ok(Ok(stream)) = stream else {
        w.core
            .borrow_mut()
            .handle_connect_failed(Instant::now(), id);
        return dispatch(&w);
    };
    let _ = stream.set_nodelay(true);
    let io = Rc::new(ConnIo::default());
    w.ios.borrow_mut().insert(id, io.clone());
    let wanted = w.core.borrow_mut().handle_connected(Instant::now(), id);
    if !wanted {
        w.ios.borrow_mut().remove(&id);
        w.core.borrow_mut().handle_closed(Instant::now(), id);
        return dispatch(&w);
    }
    dispatch(&w);
    drive(&w, id, &stream, &io).await;
    finish(&w, id);
}

/// Runs an accepted connection.
pub(super) async fn run(w: Rc<Worker>, id: ConnId, stream: TcpStream) {
    let io = Rc::new(ConnIo::default());
    w.ios.borrow_mut().insert(id, io.clone());
    drive(&w, id, &stream, &io).await;
    finish(&w, id);
}

fn finish(w: &Rc<Worker>, id: ConnId) {
    w.ios.borrow_mut().remove(&id);
    w.core.borrow_mut().handle_closed(Instant::now(), id);
    dispatch(w);
}

async fn drive(w: &Rc<Worker>, id: ConnId, stream: &TcpStream, io: &ConnIo) {
    let mut wbuf = BytesMut::new();
    loop {
        if io.abort.get() {
            return;
        }
        if wbuf.is_empty() {
            w.core.borrow_mut().take_output(id, &mut wbuf);
            if wbuf.is_empty() && io.closing.get() {
                return;
            }
        }
        let reading = !io.closing.get() && !io.paused.get();
        tokio::select! {
            r = stream.readable(), if reading => {
                if r.is_err() || !read_some(w, id, stream) {
                    return;
                }
            }
            r = stream.writable(), if !wbuf.is_empty() => {
                if r.is_err() || !write_some(w, id, stream, &mut wbuf) {
                    return;
                }
            }
            () = io.notify.notified() => {}
        }
    }
}

/// Reads what is there into the core. `false`: the connection is finished.
fn read_some(w: &Rc<Worker>, id: ConnId, stream: &TcpStream) -> bool {
    for _ in 0..READS_PER_WAKE {
        let mut buf = w.rbuf.borrow_mut();
        match stream.try_read(&mut buf[..]) {
            Ok(0) => return false,
            Ok(n) => {
                let data = buf.get_mut(..n).unwrap_or_default();
                w.core
                    .borrow_mut()
                    .handle_input_mut(Instant::now(), id, data);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(_) => return false,
        }
        drop(buf);
        dispatch(w);
    }
    dispatch(w);
    true
}

/// Writes what the socket takes. `false`: the connection is broken.
fn write_some(w: &Rc<Worker>, id: ConnId, stream: &TcpStream, wbuf: &mut BytesMut) -> bool {
    match stream.try_write(wbuf) {
        Ok(n) => {
            wbuf.advance(n);
            if wbuf.is_empty() {
                w.core.borrow_mut().handle_writable(Instant::now(), id);
                dispatch(w);
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        Err(_) => false,
    }
}
