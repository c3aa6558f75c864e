//! Publishing to real servers on loopback: an S3 server (moto, from the project's venv,
//! `make deps`) and `sshd` on 127.0.0.1 with a throw-away host and user key, serving rsync,
//! with the same tree served over https by a throw-away CA for `verify https://…`.
//!
//! The releases are two real dev-signed candidates of a fixture project whose one release
//! gate is xsc-ring on the cached XSC kernel (one TCG boot; the second candidate reuses the
//! verdict). The tests check the upload order as each server saw it, that a published
//! version is never rewritten (only `latest` is), that an upload killed halfway leaves
//! readers on the old `latest` and a rerun completes it, that a torn file of the right size
//! is sent again (resume compares SHA-256), and that `verify` of the published URL accepts
//! the release and rejects a tampered object.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::support::{repo, run, text, wait};

const QUICK: Duration = Duration::from_secs(300);

/// The fixture project and its two candidates (made once per test binary).
struct Fixture {
    dir: PathBuf,
    /// `publish/candidates/<id>` of the first and the second candidate.
    first: PathBuf,
    second: PathBuf,
    /// The dev key's public half, as `candidate` names it.
    pubkey: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        // Both tests read it for the test binary's life, so no TempDir drops it: one fixed
        // place under the target directory, replaced by the next run (disk use stays bounded).
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("publish-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sc = dir.join("scenarios");
        std::fs::create_dir(&sc).unwrap();
        std::fs::copy(
            repo().join("scenarios/xsc-ring.toml"),
            sc.join("xsc-ring.toml"),
        )
        .unwrap();
        let base: String = std::fs::read_to_string(repo().join("xsc.toml"))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("out =") && !l.starts_with("publish ="))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = base.replacen(
            "[paths]\n",
            &format!(
                "[paths]\nscenarios = \"scenarios\"\nguest-tests = \"{}\"\nout = \"out\"\npublish = \"publish\"\n",
                repo().join("guest-tests").display()
            ),
            1,
        );
        std::fs::write(dir.join("base.toml"), &cfg).unwrap();
        std::fs::write(dir.join("xsc.toml"), &cfg).unwrap();
        for tree in ["patches", "recipes"] {
            std::os::unix::fs::symlink(repo().join(tree), dir.join(tree)).unwrap();
        }
        for args in [
            &["init", "-q"][..],
            &["add", "scenarios", "xsc.toml"],
            &["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture"],
        ] {
            let st = Command::new("git")
                .args(args)
                .current_dir(&dir)
                .status()
                .unwrap();
            assert!(st.success(), "git {args:?}");
        }
        let mut made = vec![];
        let mut pubkey = PathBuf::new();
        for i in 0..2 {
            if i > 0 {
                // Candidate ids carry the time to the second: the second one needs its own.
                std::thread::sleep(Duration::from_millis(1100));
            }
            let mut c = xsc_in(&dir);
            c.args(["candidate", "--accel", "tcg"]);
            let out = run(c, Duration::from_secs(1200));
            assert_eq!(out.status.code(), Some(0), "{}", text(&out));
            let stdout = String::from_utf8_lossy(&out.stdout);
            let hint = stdout
                .lines()
                .find_map(|l| l.strip_prefix("verify: xsc-release verify "))
                .unwrap_or_else(|| panic!("no verify hint:\n{stdout}"));
            let (cand, key) = hint.split_once(" --pubkey ").unwrap();
            made.push(PathBuf::from(cand));
            pubkey = PathBuf::from(key);
        }
        Fixture {
            dir,
            first: made[0].clone(),
            second: made[1].clone(),
            pubkey,
        }
    })
}

fn xsc_in(dir: &Path) -> Command {
    xsc_with(dir, &dir.join("xsc.toml"))
}

fn xsc_with(dir: &Path, config: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    c.arg("--config")
        .arg(config)
        .current_dir(dir)
        .stdin(Stdio::null());
    c
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// The regular files under `dir`, as (path, `/`-separated path relative to `dir`).
fn files_under(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((p, rel));
            }
        }
    }
    out.sort();
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, server: &mut Child) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            server.try_wait().unwrap().is_none(),
            "the server on port {port} exited"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nothing listens on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a server this test started when the test ends, passing or not.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The project's venv (`make deps` installs .ci/requirements.txt there).
fn venv_bin(tool: &str) -> PathBuf {
    let cache = std::env::var_os("XSC_CACHE_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/xsc-release"),
        PathBuf::from,
    );
    let bin = cache.join("host/venv/bin").join(tool);
    assert!(bin.is_file(), "{} missing: run `make deps`", bin.display());
    bin
}

/// One plain HTTP/1.1 request to the S3 server: status and body. moto checks no signature
/// but treats a request without credentials as anonymous (private objects: 403).
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut rest = buf[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let nl = at + rest[at..].windows(2).position(|w| w == b"\r\n").unwrap();
            let len =
                usize::from_str_radix(String::from_utf8_lossy(&rest[at..nl]).trim(), 16).unwrap();
            if len == 0 {
                break;
            }
            out.extend_from_slice(&rest[nl + 2..nl + 2 + len]);
            at = nl + 2 + len + 2;
        }
        rest = out;
    }
    (status, rest)
}

/// SIGKILL to the process group of a child spawned with `process_group(0)`.
fn kill_group(pid: u32) {
    let st = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status()
        .unwrap();
    assert!(st.success(), "kill the publish process group");
}

/// A TCP proxy on loopback in front of the S3 server. While `hold` names a request line
/// prefix, the connection carrying that request stops being forwarded (the request never
/// reaches the server, the client waits for an answer) and `held` is set.
struct Proxy {
    port: u16,
    hold: Arc<Mutex<Option<String>>>,
    held: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold: Arc<Mutex<Option<String>>> = Arc::default();
        let held: Arc<AtomicBool> = Arc::default();
        let (h, hd) = (Arc::clone(&hold), Arc::clone(&held));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_in, mut c_out) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_in, &mut c_out);
                });
                let (h, hd) = (Arc::clone(&h), Arc::clone(&hd));
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 64 * 1024];
                    // The end of the previous read too: a request line can straddle reads.
                    let mut tail: Vec<u8> = Vec::new();
                    loop {
                        let n = match c_in.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let mut seen = std::mem::take(&mut tail);
                        seen.extend_from_slice(&buf[..n]);
                        let pattern = h.lock().unwrap().clone();
                        if let Some(p) = pattern
                            && seen.windows(p.len()).any(|w| w == p.as_bytes())
                        {
                            *h.lock().unwrap() = None;
                            hd.store(true, Ordering::SeqCst);
                            // Hold: read and drop until the client goes away.
                            while matches!(c_in.read(&mut buf), Ok(n) if n > 0) {}
                            break;
                        }
                        if s_out.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        tail = seen[seen.len().saturating_sub(256)..].to_vec();
                    }
                    let _ = s_out.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Proxy { port, hold, held }
    }
}

/// The phase of a release file in the upload order: artifacts and plain files, then
/// `SHA256SUMS` and signatures, then the manifest.
fn phase(file: &str) -> usize {
    if file == "manifest.json" {
        2
    } else if file == "SHA256SUMS" || file.ends_with(".minisig") {
        1
    } else {
        0
    }
}

/// Files in the order they arrived, as `(dir-relative name)`; asserts the phases never go
/// back and that the last one is `latest`.
fn assert_reader_safe_order(arrived: &[String], latest: &str) {
    assert_eq!(
        arrived.last().map(String::as_str),
        Some(latest),
        "{arrived:?}"
    );
    let files: Vec<&str> = arrived[..arrived.len() - 1]
        .iter()
        .map(|p| p.rsplit('/').next().unwrap())
        .collect();
    let phases: Vec<usize> = files.iter().map(|f| phase(f)).collect();
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {files:?}"
    );
    assert_eq!(phases.first(), Some(&0), "{files:?}");
    assert_eq!(phases.last(), Some(&2), "{files:?}");
    assert!(phases.contains(&1), "{files:?}");
}

/// The fixture's config plus one publish target, in a file of its own (the tests run in
/// parallel on one fixture).
fn with_target(f: &Fixture, target: &str, table: &str) -> PathBuf {
    let base = std::fs::read_to_string(f.dir.join("base.toml")).unwrap();
    let file = f.dir.join(format!("xsc-{target}.toml"));
    std::fs::write(&file, format!("{base}\n{table}")).unwrap();
    file
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn s3_publish_orders_never_overwrites_resumes_by_content_and_verifies() {
    let f = fixture();
    let port = free_port();
    let log = f.dir.join(format!("moto-{port}.log"));
    let mut moto = Command::new(venv_bin("moto_server"));
    moto.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(&log).unwrap().try_clone().unwrap())
        .stdin(Stdio::null());
    let mut moto = Server(moto.spawn().expect("moto_server"));
    wait_for_port(port, &mut moto.0);
    assert_eq!(http(port, "PUT", "/xsc-test", b"").0, 200);
    // Uploads go through a proxy that can hold one request, to kill an upload in flight.
    let proxy = Proxy::start(port);
    // Our own log, appended by moto (werkzeug): one line per request, in order.
    let moto_log = log.clone();
    let puts = move || -> Vec<String> {
        std::fs::read_to_string(&moto_log)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once("\"PUT /xsc-test/mirror/"))
            .map(|(_, rest)| rest.split_whitespace().next().unwrap().to_string())
            .collect()
    };
    let cfg = with_target(
        f,
        "mirror",
        &format!(
            "[publish.mirror]\nkind = \"s3\"\nbucket = \"xsc-test\"\nprefix = \"mirror\"\n\
             endpoint = \"http://127.0.0.1:{}\"\nregion = \"us-east-1\"\n",
            proxy.port
        ),
    );
    let publish_cmd = |dir: &Path| {
        let mut c = xsc_with(&f.dir, &cfg);
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .args(["publish"])
            .arg(dir)
            .args(["--to", "mirror"]);
        c
    };
    let publish = |dir: &Path| run(publish_cmd(dir), QUICK);
    let verify = |url: &str| {
        let mut c = xsc_with(&f.dir, &cfg);
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
            .env("AWS_ALLOW_HTTP", "true")
            .args(["verify", url, "--pubkey"])
            .arg(&f.pubkey);
        run(c, QUICK)
    };
    let (id1, id2) = (name(&f.first), name(&f.second));
    let latest = || http(port, "GET", "/xsc-test/mirror/candidates/latest", b"");

    // A full publish, in reader-safe order as the server saw it.
    let out = publish(&f.first);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_reader_safe_order(&puts(), "candidates/latest");
    assert_eq!(latest(), (200, format!("{id1}\n").into_bytes()));
    let out = verify("s3://xsc-test/mirror/candidates");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains(&id1), "{}", text(&out));

    // The same version again: nothing but `latest` is written.
    let before = puts().len();
    let out = publish(&f.first);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(puts()[before..], ["candidates/latest".to_string()]);

    // Another release under the same name is refused, and the published one stays.
    let other = f.dir.join("other").join(&id1);
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    let st = Command::new("cp")
        .arg("-r")
        .arg(&f.second)
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let before = puts().len();
    let out = publish(&other);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(
        puts().len(),
        before,
        "a refused publish wrote {:?}",
        &puts()[before..]
    );

    // The second candidate's upload, killed halfway: the proxy holds the request of the
    // second phase's first file (the artifacts have arrived) and the test kills the publish
    // process group while it waits for the answer.
    let kernel = std::fs::read_dir(&f.second)
        .unwrap()
        .flatten()
        .map(|e| name(&e.path()))
        .find(|n| n.ends_with(".bzImage"))
        .unwrap();
    let mut second_phase: Vec<String> = std::fs::read_dir(&f.second)
        .unwrap()
        .flatten()
        .map(|e| name(&e.path()))
        .filter(|n| phase(n) == 1)
        .collect();
    second_phase.sort();
    *proxy.hold.lock().unwrap() = Some(format!(
        "PUT /xsc-test/mirror/candidates/{id2}/{} ",
        second_phase[0]
    ));
    let mut c = publish_cmd(&f.second);
    c.process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let start = Instant::now();
    while !proxy.held.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < QUICK,
            "the upload never reached its second phase"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_group(child.id());
    let out = wait(child, QUICK);
    assert_eq!(out.status.code(), None, "{}", text(&out));
    let arrived: Vec<String> = puts()
        .into_iter()
        .filter_map(|p| {
            p.strip_prefix(&format!("candidates/{id2}/"))
                .map(String::from)
        })
        .collect();
    assert!(
        !arrived.is_empty() && arrived.iter().all(|n| phase(n) == 0),
        "{arrived:?}"
    );
    // One arrived artifact torn to garbage of the same size; the rerun must send it again.
    let mut body = std::fs::read(f.second.join(&kernel)).unwrap();
    body.iter_mut().take(4096).for_each(|b| *b = !*b);
    let key = format!("/xsc-test/mirror/candidates/{id2}/{kernel}");
    assert_eq!(http(port, "PUT", &key, &body).0, 200, "{key}");
    assert_eq!(
        latest(),
        (200, format!("{id1}\n").into_bytes()),
        "readers must still see the old one"
    );
    let before = puts().len();
    let out = publish(&f.second);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let resent: Vec<String> = puts()[before..].to_vec();
    assert!(
        resent.contains(&format!("candidates/{id2}/{kernel}")),
        "the torn kernel was kept: {resent:?}"
    );
    assert!(
        resent
            .iter()
            .all(|p| phase(p.rsplit('/').next().unwrap()) != 0
                || p.ends_with(&kernel)
                || p.ends_with("latest")),
        "intact artifacts were sent again: {resent:?}"
    );
    assert_reader_safe_order(&resent, "candidates/latest");
    assert_eq!(latest(), (200, format!("{id2}\n").into_bytes()));
    let (_, got) = http(
        port,
        "GET",
        &format!("/xsc-test/mirror/candidates/{id2}/{kernel}"),
        b"",
    );
    assert!(got == std::fs::read(f.second.join(&kernel)).unwrap());
    let out = verify(&format!("s3://xsc-test/mirror/candidates/{id2}"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A tampered object on the server: verify says no.
    let mut bad = got.clone();
    bad[100] ^= 1;
    let key = format!("/xsc-test/mirror/candidates/{id2}/{kernel}");
    assert_eq!(http(port, "PUT", &key, &bad).0, 200);
    let out = verify("s3://xsc-test/mirror/candidates");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains(&kernel), "{}", text(&out));
}

/// A throw-away CA and a certificate for 127.0.0.1 signed by it: `(ca.pem, cert, key)`.
fn throwaway_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let sh = format!(
        "set -e; cd {d}\n\
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
           -subj /CN=xsc-test-ca -keyout ca.key -out ca.pem 2>/dev/null\n\
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
           -keyout srv.key -out srv.csr 2>/dev/null\n\
         printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext\n\
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
           -extfile ext -out srv.pem 2>/dev/null\n",
        d = dir.display()
    );
    let st = Command::new("sh").args(["-c", &sh]).status().unwrap();
    assert!(st.success(), "openssl");
    (dir.join("ca.pem"), dir.join("srv.pem"), dir.join("srv.key"))
}

#[test]
fn rsync_publish_over_ssh_survives_a_kill_and_verifies_over_https() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let port = free_port();
    // Keys and config of this sshd only; the CI user is root.
    for (key, file) in [("host", "host_key"), ("user", "user_key")] {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", key, "-f"])
            .arg(d.join(file))
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
    let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
    std::fs::write(
        d.join("known_hosts"),
        format!("[127.0.0.1]:{port} {host_pub}"),
    )
    .unwrap();
    std::fs::write(
        d.join("sshd_config"),
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\n\
             PidFile {pid}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n",
            hk = d.join("host_key").display(),
            ak = d.join("authorized_keys").display(),
            pid = d.join("sshd.pid").display(),
        ),
    )
    .unwrap();
    // sshd insists on its privilege separation directory, which only the service creates.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut sshd = Command::new("/usr/sbin/sshd");
    sshd.args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
        .stdin(Stdio::null());
    let mut sshd = Server(sshd.spawn().expect("sshd"));
    wait_for_port(port, &mut sshd.0);

    // The ssh command comes from the environment (RSYNC_RSH), as a user's would. This one
    // counts its connections and, at the one named in `stall-at`, never connects but keeps
    // the pipe open until rsync goes away: the upload hangs there, deterministically,
    // between two phases.
    let wrap = d.join("ssh-wrap");
    std::fs::write(
        &wrap,
        format!(
            "#!/bin/sh\nd={d}\nn=$(( $(cat $d/count 2>/dev/null || echo 0) + 1 )); echo $n > $d/count\n\
             if [ -e $d/stall-at ] && [ \"$n\" = \"$(cat $d/stall-at)\" ]; then touch $d/stalled; cat >/dev/null; exit 1; fi\n\
             exec ssh -F /dev/null -p {port} -i $d/user_key -o IdentitiesOnly=yes -o BatchMode=yes \
             -o UserKnownHostsFile=$d/known_hosts -o StrictHostKeyChecking=yes \"$@\"\n",
            d = d.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrap, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let www = d.join("www");
    std::fs::create_dir(&www).unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let cfg = with_target(
        f,
        "web",
        &format!(
            "[publish.web]\nkind = \"rsync\"\ndestination = \"{}@127.0.0.1:{}\"\n",
            user.trim(),
            www.display()
        ),
    );
    let publish_cmd = |dir: &Path| {
        let mut c = xsc_with(&f.dir, &cfg);
        c.env("RSYNC_RSH", &wrap)
            .args(["publish"])
            .arg(dir)
            .args(["--to", "web"]);
        c
    };
    let (id1, id2) = (name(&f.first), name(&f.second));
    let latest = || std::fs::read_to_string(www.join("candidates/latest")).unwrap();

    // A full publish: the order as the server's file system saw it (each file's ctime is
    // the moment rsync renamed it into place).
    let out = run(publish_cmd(&f.first), QUICK);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mut arrived: Vec<(i128, String)> = files_under(&www.join("candidates").join(&id1))
        .into_iter()
        .chain([(www.join("candidates/latest"), "latest".to_string())])
        .map(|(p, n)| {
            let m = std::fs::metadata(p).unwrap();
            let ns = std::os::unix::fs::MetadataExt::ctime(&m) as i128 * 1_000_000_000
                + i128::from(std::os::unix::fs::MetadataExt::ctime_nsec(&m));
            (ns, n)
        })
        .collect();
    arrived.sort();
    let arrived: Vec<String> = arrived.into_iter().map(|(_, n)| n).collect();
    assert_reader_safe_order(&arrived, "latest");
    assert_eq!(latest(), format!("{id1}\n"));
    // Every rsync child logged its command line.
    let logs: String = std::fs::read_dir(f.dir.join("out"))
        .unwrap()
        .flatten()
        .filter(|e| name(&e.path()).ends_with(".log"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert!(
        logs.contains("$ rsync --times --ignore-times --relative --mkpath"),
        "{logs}"
    );

    // Kill the second upload after its artifacts, while it waits on the next phase.
    let count: u32 = std::fs::read_to_string(d.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Its connections: the listing, the artifacts, then the checksums and signatures.
    std::fs::write(d.join("stall-at"), (count + 3).to_string()).unwrap();
    let mut c = publish_cmd(&f.second);
    c.process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let start = Instant::now();
    while !d.join("stalled").exists() {
        assert!(
            start.elapsed() < QUICK,
            "the upload never reached its second phase"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    kill_group(child.id());
    let out = wait(child, QUICK);
    assert_eq!(out.status.code(), None, "{}", text(&out));
    let there: Vec<String> = files_under(&www.join("candidates").join(&id2))
        .into_iter()
        .map(|(_, rel)| rel)
        .filter(|n| !n.rsplit('/').next().unwrap().starts_with('.'))
        .collect();
    assert!(
        !there.is_empty() && there.iter().all(|n| phase(n) == 0),
        "{there:?}"
    );
    assert_eq!(
        latest(),
        format!("{id1}\n"),
        "readers must still see the old one"
    );

    // One arrived artifact torn to garbage of the same size; the rerun must send it again.
    let kernel = there
        .iter()
        .find(|n| n.ends_with(".bzImage"))
        .unwrap()
        .clone();
    let torn = www.join("candidates").join(&id2).join(&kernel);
    let mut body = std::fs::read(&torn).unwrap();
    body.iter_mut().take(4096).for_each(|b| *b = !*b);
    std::fs::write(&torn, &body).unwrap();
    std::fs::remove_file(d.join("stall-at")).unwrap();
    let out = run(publish_cmd(&f.second), QUICK);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let kept = there.len() - 1;
    assert!(
        stdout(&out).contains(&format!("{kept} already there")),
        "{}",
        text(&out)
    );
    assert_eq!(latest(), format!("{id2}\n"));
    assert!(std::fs::read(&torn).unwrap() == std::fs::read(f.second.join(&kernel)).unwrap());

    // The same tree over https with a throw-away CA: verify accepts it, then not once tampered.
    let (ca, cert, key) = throwaway_ca(d);
    let hport = free_port();
    let serve = format!(
        "import http.server, ssl, functools\n\
         h = functools.partial(http.server.SimpleHTTPRequestHandler, directory={www:?})\n\
         s = http.server.ThreadingHTTPServer(('127.0.0.1', {hport}), h)\n\
         c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain({cert:?}, {key:?})\n\
         s.socket = c.wrap_socket(s.socket, server_side=True)\n\
         s.serve_forever()\n",
        www = www.display().to_string(),
        cert = cert.display().to_string(),
        key = key.display().to_string(),
    );
    let mut https = Command::new("/usr/bin/python3");
    https
        .args(["-c", &serve])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("https.log")).unwrap())
        .stdin(Stdio::null());
    let mut https = Server(https.spawn().expect("python3 https server"));
    wait_for_port(hport, &mut https.0);
    let verify = |url: &str| {
        let mut c = xsc_with(&f.dir, &cfg);
        c.env("SSL_CERT_FILE", &ca)
            .args(["verify", url, "--pubkey"])
            .arg(&f.pubkey);
        run(c, QUICK)
    };
    let url = format!("https://127.0.0.1:{hport}/candidates");
    let out = verify(&url);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).contains(&id2), "{}", text(&out));
    body = std::fs::read(&torn).unwrap();
    body[100] ^= 1;
    std::fs::write(&torn, &body).unwrap();
    let out = verify(&url);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains(&kernel), "{}", text(&out));
}
