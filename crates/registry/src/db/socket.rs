//! A pooled server connection's socket, watched so that a check-out needs no round trip.
//!
//! A connection the server has closed (restart, crash, `KILL`, `wait_timeout`,
//! `pg_terminate_backend`) has something to read on its socket: the end of the stream, often
//! after an error message. An idle connection the server still holds has nothing: neither
//! MariaDB nor PostgreSQL writes to an idle session unasked, save PostgreSQL's rare
//! notices, which only cost a ping. So the pool asks the socket (`poll(2)` with no wait)
//! instead of the server (`SELECT 1`, a round trip on every check-out: a fifth of MariaDB's
//! commands in a show).
//!
//! Diesel does not hand out a connection's file descriptor, so it is found once, when the
//! connection opens: the socket in this process whose local port is the one the server
//! reports for the session and whose peer port is the server's. This process gets its own
//! duplicate of it (`pidfd_getfd(2)` on itself), which it may poll safely for as long as the
//! connection lives. Where it cannot be found (a Unix socket, a proxy in between, a kernel
//! without `pidfd_getfd`), the pool pings as before.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::net::{getpeername, getsockname};
use rustix::process::{PidfdFlags, PidfdGetfdFlags, getpid, pidfd_getfd, pidfd_open};

/// This process's duplicate of a connection's TCP socket.
#[derive(Debug)]
pub struct Socket(OwnedFd);

impl Socket {
    /// The one TCP socket of this process with this local port and this peer port; `None`
    /// when there is none, or more than one. While another thread is looking for its own
    /// connection's socket it holds duplicates of every socket for a moment: a socket is
    /// known by its inode, so those count once.
    pub fn find(local_port: u16, peer_port: u16) -> Option<Self> {
        let me = pidfd_open(getpid(), PidfdFlags::empty()).ok()?;
        // Listed before any duplicate is made here, so that none of those is listed too.
        let entries: Vec<_> = std::fs::read_dir("/proc/self/fd").ok()?.flatten().collect();
        let mut found: Option<(Self, std::ffi::OsString)> = None;
        for entry in entries {
            let Ok(link) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let link = link.into_os_string();
            if !link.to_string_lossy().starts_with("socket:") {
                continue;
            }
            let Some(number) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if found.as_ref().is_some_and(|(_, inode)| *inode == link) {
                continue;
            }
            // The ports are read from the duplicate itself: the number may have been
            // closed and reused since it was listed.
            let Ok(fd) = pidfd_getfd(&me, number, PidfdGetfdFlags::empty()) else {
                continue;
            };
            let port = |addr: Option<rustix::net::SocketAddrAny>| {
                addr.and_then(|a| SocketAddr::try_from(a).ok())
                    .map(|a| a.port())
            };
            let local = port(getsockname(&fd).ok());
            let peer = port(getpeername(&fd).ok().flatten());
            if local == Some(local_port) && peer == Some(peer_port) {
                if found.is_some() {
                    return None;
                }
                found = Some((Self(fd), link));
            }
        }
        found.map(|(socket, _)| socket)
    }

    /// True while the server has neither closed the connection nor written to it: nothing
    /// to read, no hang-up, no error.
    pub fn is_quiet(&self) -> bool {
        let mut fds = [PollFd::new(&self.0, PollFlags::IN | PollFlags::RDHUP)];
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(poll(&mut fds, Some(&now)), Ok(0))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    use super::Socket;

    /// A client socket of a new loopback connection, watched, and the server's end.
    fn watched(listener: &TcpListener) -> (TcpStream, Socket, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let local = client.local_addr().expect("local").port();
        let peer = client.peer_addr().expect("peer").port();
        assert!(
            Socket::find(local, peer.wrapping_add(1)).is_none(),
            "a wrong peer port matches nothing"
        );
        // A second descriptor of the same socket (as another thread's search holds for a
        // moment) is the same socket, not a second match.
        let again = client.try_clone().expect("dup");
        let socket = Socket::find(local, peer).expect("the client's socket is found");
        drop(again);
        (client, socket, server)
    }

    #[test]
    fn a_connection_is_quiet_until_its_peer_writes_or_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");

        let (_client, socket, mut server) = watched(&listener);
        assert!(socket.is_quiet(), "an idle open connection is quiet");
        server.write_all(b"x").expect("write");
        std::thread::sleep(Duration::from_millis(20));
        assert!(!socket.is_quiet(), "unread data is not quiet");

        let (_client, socket, server) = watched(&listener);
        assert!(socket.is_quiet());
        drop(server);
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !socket.is_quiet(),
            "a connection its peer closed is not quiet"
        );
    }
}
