//! Live capture on a network the test builds itself: two namespaces joined by
//! a veth pair, a TCP server with listeners on two ports, clients whose
//! connections end in known ways, UDP exchanges, and sockscope capturing on
//! the server's side. Needs root (CI runs as root); skipped otherwise.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{analyze, read_zeek_log, scratch};

/// Two namespaces and a veth pair, deleted on drop (even when a test fails).
struct Net {
    a: String,
    b: String,
    if_b: String,
    ip_a: String,
    ip_b: String,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

impl Net {
    fn new(tag: &str) -> Option<Net> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || !ip(&["-V"]) {
            eprintln!("skipping: needs root and iproute2");
            return None;
        }
        let id = std::process::id() % 100_000;
        let net = Net {
            a: format!("ssc-{tag}-a-{id}"),
            b: format!("ssc-{tag}-b-{id}"),
            if_b: format!("s{}b{id}", &tag[..1]),
            ip_a: format!("10.198.{}.1", id % 250),
            ip_b: format!("10.198.{}.2", id % 250),
        };
        let if_a = format!("s{}a{id}", &tag[..1]);
        let ok = ip(&["netns", "add", &net.a])
            && ip(&["netns", "add", &net.b])
            && ip(&[
                "link", "add", &if_a, "type", "veth", "peer", "name", &net.if_b,
            ])
            && ip(&["link", "set", &if_a, "netns", &net.a])
            && ip(&["link", "set", &net.if_b, "netns", &net.b])
            && ip(&[
                "-n",
                &net.a,
                "addr",
                "add",
                &format!("{}/24", net.ip_a),
                "dev",
                &if_a,
            ])
            && ip(&[
                "-n",
                &net.b,
                "addr",
                "add",
                &format!("{}/24", net.ip_b),
                "dev",
                &net.if_b,
            ])
            && ip(&["-n", &net.a, "link", "set", &if_a, "up"])
            && ip(&["-n", &net.b, "link", "set", &net.if_b, "up"])
            && ip(&["-n", &net.a, "link", "set", "lo", "up"])
            && ip(&["-n", &net.b, "link", "set", "lo", "up"]);
        assert!(ok, "could not build the test network");
        Some(net)
    }

    /// Run `f` on a thread that has entered namespace `ns`.
    fn in_ns<T: Send + 'static>(
        ns: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> thread::JoinHandle<T> {
        let path = PathBuf::from("/run/netns").join(ns);
        thread::spawn(move || {
            let file = File::open(&path).unwrap();
            // SAFETY: a valid namespace descriptor; affects this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {}", path.display());
            f()
        })
    }

    fn capture(&self, out: &Path, extra: &[&str]) -> Child {
        let mut args = vec![
            "netns".to_string(),
            "exec".into(),
            self.b.clone(),
            env!("CARGO_BIN_EXE_sockscope").into(),
            "capture".into(),
            "-i".into(),
            self.if_b.clone(),
            "--out".into(),
            out.display().to_string(),
            "--no-charts".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The journal appears once the interface is open.
        let t = Instant::now();
        while !out.join("conn.log").exists() && t.elapsed() < Duration::from_secs(20) {
            thread::sleep(Duration::from_millis(50));
        }
        thread::sleep(Duration::from_millis(300));
        child
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.a]);
        ip(&["netns", "del", &self.b]);
    }
}

fn stop(child: Child, signal: i32) -> String {
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, signal) };
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The server: 8080 answers and closes (FIN) or resets by request, 9090
/// holds connections open, 5300/udp echoes.
fn serve(ns: &str, ip_b: String) -> thread::JoinHandle<()> {
    Net::in_ns(ns, move || {
        let l1 = TcpListener::bind((ip_b.as_str(), 8080)).unwrap();
        let l2 = TcpListener::bind((ip_b.as_str(), 9090)).unwrap();
        let udp = UdpSocket::bind((ip_b.as_str(), 5300)).unwrap();
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&buf[..n], from);
            }
        });
        thread::spawn(move || {
            let mut held = Vec::new();
            for s in l2.incoming().flatten() {
                held.push(s);
            }
        });
        for s in l1.incoming() {
            let mut s = s.unwrap();
            thread::spawn(move || {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_err() {
                    return;
                }
                let _ = s.write_all(b"reply");
                if b[0] == b'R' {
                    // Linger 0: close sends a RST.
                    let lg = libc::linger {
                        l_onoff: 1,
                        l_linger: 0,
                    };
                    // SAFETY: valid socket and option struct.
                    unsafe {
                        libc::setsockopt(
                            s.as_raw_fd(),
                            libc::SOL_SOCKET,
                            libc::SO_LINGER,
                            &lg as *const _ as *const libc::c_void,
                            std::mem::size_of::<libc::linger>() as u32,
                        );
                    }
                    drop(s);
                } else {
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest);
                }
            });
        }
    })
}

/// The clients; returns the sockets left open so they stay open.
fn clients(ns: String, ip_b: String) -> Vec<TcpStream> {
    Net::in_ns(&ns, move || {
        let at = |port: u16| SocketAddr::new(ip_b.parse().unwrap(), port);
        for kind in [b'F', b'F', b'F', b'R', b'R'] {
            let mut s = TcpStream::connect_timeout(&at(8080), Duration::from_secs(2)).unwrap();
            s.write_all(&[kind]).unwrap();
            let mut reply = Vec::new();
            let _ = s.read_to_end_or_reply(&mut reply);
            let _ = s.shutdown(Shutdown::Both);
            thread::sleep(Duration::from_millis(50));
        }
        let open: Vec<TcpStream> = (0..2)
            .map(|_| TcpStream::connect(at(9090)).unwrap())
            .collect();
        for _ in 0..2 {
            assert!(TcpStream::connect_timeout(&at(7070), Duration::from_secs(2)).is_err());
        }
        for i in 0..3 {
            let u = UdpSocket::bind("0.0.0.0:0").unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            u.send_to(format!("ping{i}").as_bytes(), at(5300)).unwrap();
            let mut b = [0u8; 16];
            u.recv_from(&mut b).unwrap();
        }
        open
    })
    .join()
    .unwrap()
}

trait ReadReply {
    fn read_to_end_or_reply(&mut self, out: &mut Vec<u8>) -> std::io::Result<()>;
}

impl ReadReply for TcpStream {
    /// Read the 5-byte reply (a reset connection may end the read with an error).
    fn read_to_end_or_reply(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut b = [0u8; 5];
        self.read_exact(&mut b)?;
        out.extend_from_slice(&b);
        Ok(())
    }
}

fn states_by_port(rows: &[HashMap<String, String>]) -> HashMap<(String, String), Vec<String>> {
    let mut m: HashMap<(String, String), Vec<String>> = HashMap::new();
    for r in rows {
        m.entry((r["proto"].clone(), r["id.resp_p"].clone()))
            .or_default()
            .push(r["conn_state"].clone());
    }
    for v in m.values_mut() {
        v.sort();
    }
    m
}

fn body(path: &Path) -> Vec<String> {
    let mut rows: Vec<String> = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect();
    rows.sort();
    rows
}

#[test]
fn capture_on_a_veth_pair_sees_every_lifecycle() {
    let Some(net) = Net::new("live") else { return };
    let out = scratch("live-capture");
    let raw = out.join("raw.pcap");
    let server = serve(&net.b, net.ip_b.clone());
    thread::sleep(Duration::from_millis(300));
    let cap = net.capture(&out, &["--write", raw.to_str().unwrap()]);
    let held = clients(net.a.clone(), net.ip_b.clone());
    thread::sleep(Duration::from_millis(1500));
    let err = stop(cap, libc::SIGTERM);
    drop(held);
    drop(server);
    assert!(err.contains("stopped by signal"), "{err}");

    let log = read_zeek_log(&out.join("conn.log"));
    let states = states_by_port(&log.rows);
    let s = |proto: &str, port: &str| {
        states
            .get(&(proto.into(), port.into()))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        s("tcp", "8080"),
        ["RSTR", "RSTR", "SF", "SF", "SF"],
        "{states:?}"
    );
    assert_eq!(s("tcp", "9090"), ["S1", "S1"]);
    assert_eq!(s("tcp", "7070"), ["REJ", "REJ"]);
    assert_eq!(s("udp", "5300"), ["SF", "SF", "SF"]);

    let ports = std::fs::read_to_string(out.join("ports.csv")).unwrap();
    let row = |port: &str| -> Vec<String> {
        ports
            .lines()
            .find(|l| l.starts_with(&format!("tcp,{port},")))
            .unwrap_or_else(|| panic!("{port} in {ports}"))
            .split(',')
            .map(String::from)
            .collect()
    };
    // proto,port,servers,clients,client_sockets,connections,established,rejected,unanswered,failed,...
    assert_eq!(
        &row("8080")[2..10],
        ["1", "1", "5", "5", "5", "0", "0", "0"]
    );
    assert_eq!(
        &row("7070")[2..10],
        ["1", "1", "2", "2", "0", "2", "0", "2"]
    );

    // The saved packets, analysed offline, give the same rows.
    let offline = out.join("offline");
    analyze(&[&raw], &offline, &["--no-charts"]);
    assert_eq!(body(&offline.join("conn.log")), body(&out.join("conn.log")));
}

#[test]
fn kill_minus_nine_loses_only_open_connections() {
    let Some(net) = Net::new("kill") else { return };
    let out = scratch("live-kill");
    let ip_b = net.ip_b.clone();
    let server = Net::in_ns(&net.b, move || {
        let l = TcpListener::bind((ip_b.as_str(), 8080)).unwrap();
        for s in l.incoming().take(4) {
            let mut s = s.unwrap();
            let mut b = Vec::new();
            let _ = s.read_to_end(&mut b);
        }
    });
    thread::sleep(Duration::from_millis(300));
    let cap = net.capture(&out, &[]);
    let ip_b = net.ip_b.clone();
    let open = Net::in_ns(&net.a, move || {
        for _ in 0..3 {
            let mut s = TcpStream::connect((ip_b.as_str(), 8080)).unwrap();
            s.write_all(b"x").unwrap();
            drop(s);
        }
        TcpStream::connect((ip_b.as_str(), 8080)).unwrap()
    })
    .join()
    .unwrap();
    // Closed connections leave the table 5 s after their last packet.
    thread::sleep(Duration::from_secs(9));
    stop(cap, libc::SIGKILL);
    drop(open);
    drop(server);
    let rows = read_zeek_log(&out.join("conn.log")).rows;
    let finished = rows
        .iter()
        .filter(|r| r["id.resp_p"] == "8080" && r["conn_state"] == "SF")
        .count();
    assert_eq!(
        finished,
        3,
        "{} rows: {:?}",
        rows.len(),
        rows.iter().map(|r| &r["history"]).collect::<Vec<_>>()
    );
    // Every line is whole: no half-written row.
    let text = std::fs::read_to_string(out.join("conn.log")).unwrap();
    assert!(text.ends_with('\n'));
}

#[test]
fn capture_errors_are_one_clear_line() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !ip(&["-V"]) {
        eprintln!("skipping: needs root and iproute2");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_sockscope");
    let dir = scratch("live-errors");
    let out = dir.join("out");
    let run = |cmd: &mut Command| {
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    let args = |iface: &str| {
        vec![
            "capture",
            "-i",
            iface,
            "--duration",
            "1s",
            "--out",
            out.to_str().unwrap(),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let err = run(Command::new(bin).args(args("nosuchif0")));
    assert_eq!(
        err.trim(),
        "sockscope: no such interface: nosuchif0 (see `sockscope interfaces`)"
    );
    let err = run(Command::new(bin)
        .args(args("lo"))
        .args(["--filter", "port banana"]));
    assert!(
        err.starts_with("sockscope: bad BPF filter \"port banana\""),
        "{err}"
    );
    let err = run(Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin])
        .args(args("lo")));
    assert!(
        err.starts_with("sockscope: no permission to capture on lo: run as root or grant"),
        "{err}"
    );
    // A veth end that is not up, in a namespace of its own.
    let ns = format!("ssc-down-{}", std::process::id() % 100_000);
    let (a, b) = (
        format!("sda{}", std::process::id() % 100_000),
        format!("sdb{}", std::process::id() % 100_000),
    );
    assert!(ip(&["netns", "add", &ns]));
    let made = ip(&["link", "add", &a, "type", "veth", "peer", "name", &b])
        && ip(&["link", "set", &a, "netns", &ns]);
    let o = Command::new("ip")
        .args(["netns", "exec", &ns, bin])
        .args(args(&a))
        .output()
        .unwrap();
    ip(&["netns", "del", &ns]);
    ip(&["link", "del", &b]);
    assert!(made);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim(), format!("sockscope: interface {a} is down"));
}
