//! echo-bench as a measuring tool: the open loop corrects coordinated
//! omission, its exports read back, its threads add up, and it talks to
//! servers other than ours (another reply prefix, a PROXY v2 header).
//!
//! The servers here are built in the test: thread-per-connection echo
//! servers that can stall on a fixed clock, answer with any prefix, and
//! require a PROXY v2 header first. Assertions are about shapes and counts,
//! never about speed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credit_actors::net::proxy::{self, Parsed};
use credit_bench::loadgen::{self, hdr, Config, Scenario};

/// How a test server behaves.
#[derive(Clone)]
struct Behaviour {
    /// Before each reply, wait out any pause: the server is still for the
    /// first `stall` of every second of its life.
    stall: Option<Duration>,
    /// What each reply starts with.
    prefix: &'static str,
    /// Require a PROXY v2 header naming the peer's own addresses first.
    proxy_v2: bool,
    /// Take this long over every reply.
    delay: Option<Duration>,
}

impl Default for Behaviour {
    /// Answers at once with our servers' prefix.
    fn default() -> Behaviour {
        Behaviour {
            stall: None,
            prefix: "You said: ",
            proxy_v2: false,
            delay: None,
        }
    }
}

struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Connections whose PROXY header named their peer correctly.
    proxied: Arc<std::sync::atomic::AtomicU64>,
}

impl TestServer {
    fn start(b: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let proxied = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (stop2, proxied2) = (stop.clone(), proxied.clone());
        let born = Instant::now();
        std::thread::spawn(move || {
            let limit = Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < limit {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (b, proxied) = (b.clone(), proxied2.clone());
                        std::thread::spawn(move || serve(s, &b, born, &proxied));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        TestServer {
            addr,
            stop,
            proxied,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(s: TcpStream, b: &Behaviour, born: Instant, proxied: &std::sync::atomic::AtomicU64) {
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.set_nodelay(true);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut writer = s.try_clone().unwrap();
    if b.proxy_v2 {
        // 16 bytes of fixed part, then the addresses' length.
        let mut head = vec![0u8; 16];
        if reader.read_exact(&mut head).is_err() {
            return;
        }
        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
        let mut rest = vec![0u8; len];
        if reader.read_exact(&mut rest).is_err() {
            return;
        }
        head.extend_from_slice(&rest);
        match proxy::parse(&head) {
            Ok(Parsed::Done(h, n))
                if n == head.len()
                    && h.source == s.peer_addr().ok()
                    && h.destination == s.local_addr().ok() =>
            {
                proxied.fetch_add(1, Ordering::Relaxed);
            }
            _ => return,
        }
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(d) = b.delay {
            std::thread::sleep(d);
        }
        if let Some(stall) = b.stall {
            let into = Duration::from_nanos((born.elapsed().as_nanos() % 1_000_000_000) as u64);
            if into < stall {
                std::thread::sleep(stall - into);
            }
        }
        let mut reply = b.prefix.as_bytes().to_vec();
        reply.extend_from_slice(&line);
        if writer.write_all(&reply).is_err() {
            return;
        }
    }
}

fn config(addr: SocketAddr, scenario: Scenario) -> Config {
    let mut c = Config::for_scenario(scenario);
    c.addr = addr;
    c.progress = false;
    c.duration = Duration::from_millis(500);
    c.conns = 2;
    c
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A server that stalls 200 ms every second: at a fixed rate, latency
/// counted from each line's due time shows the stalls at p99.9, while
/// latency counted from the actual send (one line in flight per
/// connection, as a closed loop) hides them, since only the line in flight
/// when a stall begins sees it.
#[test]
fn the_open_loop_shows_a_stall_that_the_uncorrected_figure_hides() {
    let server = TestServer::start(Behaviour {
        stall: Some(Duration::from_millis(200)),
        ..Behaviour::default()
    });
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.conns = 1;
    cfg.rate = Some(2000.0);
    cfg.duration = Duration::from_secs(3);
    let r = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    let corrected = r.histogram.as_ref().expect("latency");
    let uncorrected = r
        .uncorrected_histogram
        .as_ref()
        .expect("uncorrected latency");
    // Every line of the window was scheduled, and every one sent before
    // it closed was answered once (a stall at its very end can hold some
    // back, which are counted as never sent).
    let rate = r.rate.expect("rate figures");
    assert_eq!(rate.scheduled, 6000, "{r}");
    assert_eq!(r.lines_sent + rate.unsent, 6000, "{r}");
    assert!(r.lines_sent >= 5000, "{r}");
    assert_eq!(corrected.len(), r.lines_sent, "{r}");
    assert_eq!(uncorrected.len(), r.lines_sent, "{r}");
    let c999 = ms(corrected.value_at_quantile(0.999));
    let u999 = ms(uncorrected.value_at_quantile(0.999));
    eprintln!(
        "stalling server: p99 corrected {:.2} ms, uncorrected {:.2} ms; p99.9 corrected {c999:.2} ms, uncorrected {u999:.2} ms; max {:.1} / {:.1} ms",
        ms(corrected.value_at_quantile(0.99)),
        ms(uncorrected.value_at_quantile(0.99)),
        ms(corrected.max()),
        ms(uncorrected.max()),
    );
    assert!(
        c999 >= 100.0,
        "corrected p99.9 {c999} ms should show the stall\n{r}"
    );
    assert!(
        u999 < 100.0,
        "uncorrected p99.9 {u999} ms should hide the stall\n{r}"
    );
    // Both saw the stall at their maximum: the uncorrected figure hides it
    // in the percentiles, not by missing it.
    assert!(ms(uncorrected.max()) >= 100.0, "{r}");
}

/// A closed loop against the same server misses the stalls the same way:
/// the reason for the open loop.
#[test]
fn the_closed_loop_hides_the_stall_in_its_percentiles() {
    let server = TestServer::start(Behaviour {
        stall: Some(Duration::from_millis(200)),
        ..Behaviour::default()
    });
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.conns = 1;
    cfg.duration = Duration::from_millis(2500);
    let r = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    let h = r.histogram.as_ref().expect("latency");
    assert!(r.uncorrected_histogram.is_none() && r.rate.is_none());
    assert!(h.len() > 3000, "{r}");
    assert!(ms(h.value_at_quantile(0.999)) < 100.0, "{r}");
    assert!(ms(h.max()) >= 100.0, "{r}");
}

/// The `.hgrm` file written from a run reads back with the same
/// percentiles the run reports.
#[test]
fn the_hgrm_export_reads_back_with_the_same_percentiles() {
    let server = TestServer::start(Behaviour::default());
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.rate = Some(4000.0);
    let r = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    let h = r.histogram.as_ref().unwrap();
    let mut text = Vec::new();
    hdr::write_hgrm(h, &mut text).unwrap();
    let parsed = hdr::parse_hgrm(std::str::from_utf8(&text).unwrap()).unwrap();
    assert_eq!(parsed.total_count, h.len());
    assert_eq!(parsed.total_count, r.latency.unwrap().samples);
    // The same to the histogram's own resolution: the file's rows come from
    // its quantile iterator, which may stop one bucket (1/1024 of the
    // value) from `value_at_quantile` at the same level; and the file
    // rounds to 0.001 ms.
    let same = |file_ms: f64, ns: u64| {
        let bucket = h.equivalent_range(ns) as f64 / 1e6;
        (file_ms - ns as f64 / 1e6).abs() <= bucket + 0.0015
    };
    for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
        // The file's row for q is the first at or past it, as a reader
        // looks it up; its value is the histogram's at that row's level.
        let row = parsed
            .rows
            .iter()
            .find(|row| row.percentile >= q)
            .unwrap_or_else(|| panic!("no row at or past {q}"));
        // The row's level is printed rounded: a value one sample either
        // side of it is the same row (where samples are sparse, the
        // neighbouring bucket with a sample may be several away).
        let one = 1.0 / h.len() as f64;
        let lo = h.value_at_quantile((row.percentile - one).max(0.0));
        let hi = h.value_at_quantile((row.percentile + one).min(1.0));
        let want = h.value_at_quantile(row.percentile);
        assert!(
            same(row.value_ms, want)
                || (row.value_ms >= lo as f64 / 1e6 - 0.0015
                    && row.value_ms <= hi as f64 / 1e6 + 0.0015),
            "q {q}: file {} ms, histogram {want} ns ({lo}..{hi} one sample either side)",
            row.value_ms
        );
        assert_eq!(parsed.value_at_percentile(q), Some(row.value_ms));
    }
    let p50 = r.latency.unwrap().p50_us;
    let file_p50 = parsed.value_at_percentile(0.5).unwrap();
    assert!(
        same(file_p50, (p50 * 1e3) as u64),
        "{file_p50} ms vs {p50} us"
    );
}

/// `--threads 2` at a rate sends and verifies as many lines as two
/// separate runs at half the rate each: the schedule fixes the count.
#[test]
fn two_threads_verify_as_many_lines_as_two_runs() {
    let server = TestServer::start(Behaviour::default());
    let verified = |r: &loadgen::Report| r.lines_answered + r.lines_answered_late;
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.conns = 4;
    cfg.rate = Some(2000.0);
    // Room for every line due, so none waits past the window for a reply
    // on a slow machine: the count is the schedule's alone.
    cfg.depth = 16;
    cfg.duration = Duration::from_secs(1);
    cfg.threads = 2;
    let both = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(both.is_clean(), "{both}");
    assert_eq!(both.params.threads, 2);
    assert_eq!(both.params.rate, Some(2000.0), "the shares' rates add up");
    cfg.conns = 2;
    cfg.rate = Some(1000.0);
    cfg.threads = 1;
    let one = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    let other = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(one.is_clean() && other.is_clean(), "{one}\n{other}");
    assert_eq!(verified(&both), verified(&one) + verified(&other));
    assert_eq!(verified(&both), 2000);
    assert_eq!(both.histogram.as_ref().unwrap().len(), 2000);
    // And a closed loop on two threads merges its histograms.
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.conns = 4;
    cfg.threads = 2;
    let closed = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(closed.is_clean(), "{closed}");
    assert_eq!(
        closed.histogram.as_ref().unwrap().len(),
        closed.lines_answered
    );
}

/// A warm-up is counted nowhere: at a fixed rate the window's count is
/// exactly the schedule's, whatever ran before it.
#[test]
fn the_warmup_is_left_out_of_every_figure() {
    let server = TestServer::start(Behaviour::default());
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.rate = Some(1000.0);
    cfg.depth = 16;
    cfg.duration = Duration::from_millis(500);
    cfg.warmup = Duration::from_millis(500);
    let r = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.lines_sent, 500, "{r}");
    assert_eq!(r.histogram.as_ref().unwrap().len(), 500, "{r}");
    assert_eq!(r.rate.unwrap().scheduled, 500);
    // A closed loop forgets the warm-up's counts; the lines in flight when
    // the window opens count as its own, so every line counted as sent is
    // answered once.
    let mut cfg = config(server.addr, Scenario::Pipeline);
    cfg.warmup = Duration::from_millis(300);
    let r = loadgen::run(Scenario::Pipeline, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    assert!(r.lines_answered > 0);
    assert_eq!(
        r.lines_sent,
        r.lines_answered + r.lines_answered_late,
        "{r}"
    );
}

/// A server slower than the rate asked: the lines the schedule could not
/// send are counted as never sent, with a warning, and none of that is an
/// error; the drain does not wait for lines it will not send.
#[test]
fn a_rate_the_server_cannot_keep_is_reported_not_counted_as_errors() {
    let server = TestServer::start(Behaviour {
        delay: Some(Duration::from_millis(2)),
        ..Behaviour::default()
    });
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.conns = 1;
    cfg.rate = Some(5000.0);
    let started = Instant::now();
    let r = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    let rate = r.rate.unwrap();
    assert_eq!(rate.scheduled, 2500);
    // At most one line in 2 ms could go: 250 of 2,500.
    assert!(rate.on_time <= 300, "{r}");
    assert_eq!(rate.unsent, rate.scheduled - r.lines_sent, "{r}");
    assert_eq!(
        r.lines_sent,
        r.lines_answered + r.lines_answered_late,
        "{r}"
    );
    assert_eq!(r.warnings().len(), 1, "{r}");
    // The 5 s drain timeout was not waited out.
    assert!(started.elapsed() < Duration::from_secs(4), "{r}");
}

/// A plain echo (no prefix) is verified with `--expect-prefix ''`, and the
/// default prefix against it is a mismatch.
#[test]
fn another_reply_format_is_verified() {
    let server = TestServer::start(Behaviour {
        prefix: "",
        ..Behaviour::default()
    });
    let mut cfg = config(server.addr, Scenario::Pipeline);
    cfg.expect_prefix = Vec::new();
    let r = loadgen::run(Scenario::Pipeline, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    assert!(r.lines_answered > 100, "{r}");
    cfg.expect_prefix = b"You said: ".to_vec();
    let r = loadgen::run(Scenario::Pipeline, &cfg).unwrap();
    assert!(r.errors.mismatch > 0, "{r}");
}

/// `--proxy-v2` begins every connection with a header naming the
/// connection's own addresses.
#[test]
fn every_connection_begins_with_a_proxy_v2_header() {
    let server = TestServer::start(Behaviour {
        proxy_v2: true,
        ..Behaviour::default()
    });
    let mut cfg = config(server.addr, Scenario::PingPong);
    cfg.conns = 3;
    cfg.proxy_v2 = true;
    let r = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(r.is_clean(), "{r}");
    assert_eq!(server.proxied.load(Ordering::Relaxed), 3);
    // Without the header the server hangs up: the flag is what it took.
    cfg.proxy_v2 = false;
    let r = loadgen::run(Scenario::PingPong, &cfg).unwrap();
    assert!(!r.is_clean(), "{r}");
}

fn echo_bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_echo-bench"))
}

/// The command line end to end: two runs append their records to one
/// file, one more to a CSV, and `plot` draws one curve per run as
/// well-formed SVG.
#[test]
fn records_append_and_plot_as_one_curve_per_run() {
    let server = TestServer::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let [runs, csv, svg, hgrm] =
        ["runs.json", "runs.csv", "plot.svg", "p.hgrm"].map(|f| dir.path().join(f));
    for (label, rate) in [("slow", "500"), ("fast", "2000")] {
        let out = echo_bench()
            .args([
                "pingpong",
                "--addr",
                &server.addr.to_string(),
                "--conns",
                "2",
            ])
            .args(["--secs", "0.5", "--rate", rate, "--depth", "16"])
            .args(["--label", label])
            .args(["--percentiles", "50,99.5", "--json"])
            .arg(&runs)
            .arg("--csv")
            .arg(&csv)
            .arg("--hdr-out")
            .arg(&hgrm)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("p99.5 ") && !stdout.contains("p90 "),
            "{stdout}"
        );
        // Not a terminal: no progress on stderr, only warnings if any.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr
                .lines()
                .all(|l| l.starts_with("echo-bench: warning:")),
            "{stderr}"
        );
    }
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&runs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[1]["label"], "fast");
    assert_eq!(records[1]["rate"]["scheduled"], 1000);
    for key in ["p50", "p99_5", "p99_99", "p99_999", "max", "mean", "count"] {
        assert!(records[0]["latency_us"][key].is_number(), "{key}");
    }
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(csv_text.lines().count(), 3, "{csv_text}");
    assert!(csv_text
        .lines()
        .next()
        .unwrap()
        .contains("latency_us.p99_9"));
    let parsed = hdr::parse_hgrm(&std::fs::read_to_string(&hgrm).unwrap()).unwrap();
    assert_eq!(parsed.total_count, 1000);

    let out = echo_bench()
        .arg("plot")
        .arg(&runs)
        .arg("-o")
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    // Each curve is a polyline in a colour of its own; axes are grey.
    let mut strokes: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .filter_map(|n| n.attribute("stroke"))
        .filter(|c| *c != "#404040")
        .collect();
    assert_eq!(strokes.len(), 2, "{strokes:?}");
    strokes.dedup();
    assert_eq!(strokes.len(), 2, "two colours: {strokes:?}");
    for label in ["slow", "fast"] {
        assert!(
            doc.descendants()
                .any(|n| n.is_text() && n.text().is_some_and(|t| t.contains(label))),
            "{label} missing"
        );
    }
}
