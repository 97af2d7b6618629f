//! Echo-line server on a tokio current-thread runtime, written the way a
//! competent tokio user would: one task per connection, `BufReader` +
//! `BufWriter` over the two halves, `read_until(b'\n')` into a reused `Vec`,
//! and a flush only when the reader has no more buffered input, so pipelined
//! lines are answered in batches.
//!
//! For every LF-terminated line `L` it answers `You said: L\n`, in order. At
//! EOF the complete lines are answered and the connection is closed (an
//! unterminated last line is dropped). TCP_NODELAY is set on every connection.
//!
//! Usage: `tokio-echo [--bind ADDR] [--port N]` (defaults 127.0.0.1, 4096).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

fn parse_args() -> Result<SocketAddr, String> {
    let mut bind: IpAddr = [127, 0, 0, 1].into();
    let mut port: u16 = 4096;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bind" => {
                let v = args.next().ok_or("--bind needs an address")?;
                bind = v.parse().map_err(|e| format!("--bind {v}: {e}"))?;
            }
            "--port" => {
                let v = args.next().ok_or("--port needs a number")?;
                port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
            }
            "-h" | "--help" => {
                println!("usage: tokio-echo [--bind ADDR] [--port N]  (defaults 127.0.0.1 4096)");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(SocketAddr::new(bind, port))
}

async fn serve(mut stream: TcpStream) -> io::Result<()> {
    let (r, w) = stream.split();
    let mut reader = BufReader::new(r);
    let mut writer = BufWriter::new(w);
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).await?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // EOF (an unterminated last line is dropped)
        }
        writer.write_all(b"You said: ").await?;
        writer.write_all(&line).await?;
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
    writer.flush().await?;
    Ok(())
}

async fn accept_loop(listener: TcpListener) {
    let mut warned = false;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let _ = serve(stream).await;
                });
            }
            Err(e) => {
                // Typically EMFILE: back off instead of spinning.
                if !warned {
                    eprintln!("tokio-echo: accept: {e}");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn main() {
    let addr = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tokio-echo: {e}");
            std::process::exit(2);
        }
    };
    // Many idle connections (c10k) need many descriptors.
    let _ = credit_bench::loadgen::raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tokio-echo: cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        };
        accept_loop(listener).await;
    });
}
