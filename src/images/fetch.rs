//! Downloads: streams to `<final>.part` while hashing, resumes an interrupted
//! transfer with a `Range` request, retries a bounded number of times with
//! backoff, shows progress, and gives the file its final name only after its
//! SHA-256 matches.

use super::catalog::{glob_match, Entry, Source};
use super::verify;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::{CONTENT_RANGE, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a download failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: cannot resolve the host name ({detail}); check the machine's DNS and internet access, or fetch on a connected machine and use `bootherd images import`")]
    Dns { url: String, detail: String },
    #[error("{url}: TLS failed ({detail}); check the system clock and any TLS-intercepting proxy")]
    Tls { url: String, detail: String },
    #[error("{url}: cannot connect ({detail}); check the network path or proxy, or use `bootherd images import` from local media")]
    Connect { url: String, detail: String },
    #[error("{url}: the server answered {status}; {hint}")]
    Status {
        url: String,
        status: StatusCode,
        hint: &'static str,
    },
    #[error("{url}: the transfer stopped after {attempts} attempt(s) at {got} bytes ({detail}); run the same command again to resume")]
    Interrupted {
        url: String,
        attempts: u32,
        got: u64,
        detail: String,
    },
    #[error("{url}: checksum mismatch: expected sha256 {expected}, got {actual} ({bytes} bytes); the partial file was removed. Run the fetch again; if it repeats, the mirror or a proxy serves a different file")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
        bytes: u64,
    },
    #[error("{url}: {pattern:?} matches no line of {sums_url}; the release line may have moved: update images/catalog.toml")]
    NotInSums {
        url: String,
        sums_url: String,
        pattern: String,
    },
    #[error("{path}: {source}; check the permissions and free space of the data directory")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How hard to try and how to report progress.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Attempts per file (1 = no retry).
    pub attempts: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// A progress bar on a terminal, log lines otherwise; `false` = neither.
    pub progress: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            attempts: 5,
            backoff: Duration::from_secs(2),
            progress: true,
        }
    }
}

/// The HTTP client for downloads: no overall timeout (ISOs are large), but a
/// stalled connection fails instead of hanging.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("bootherd/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with these settings always builds")
}

/// The URL and expected digest of a catalog entry, reading `SHA256SUMS` if
/// that is its source. `None` for package-provided files.
pub async fn resolve(
    client: &reqwest::Client,
    entry: &Entry,
) -> Result<Option<(String, String)>, FetchError> {
    match &entry.source {
        Source::Pinned { url, sha256 } => Ok(Some((url.clone(), sha256.clone()))),
        Source::Package { .. } => Ok(None),
        Source::Sha256Sums { sums_url, pattern } => {
            let resp = client
                .get(sums_url)
                .send()
                .await
                .map_err(|e| classify(sums_url, &e))?;
            let resp = check_status(sums_url, resp)?;
            let text = resp.text().await.map_err(|e| classify(sums_url, &e))?;
            let mut matches: Vec<(String, String)> = verify::parse_sums(&text)
                .into_iter()
                .filter(|(_, name)| glob_match(pattern, name))
                .collect();
            // The newest point release: compare names by their digit runs as numbers.
            matches.sort_by_key(|m| natural_key(&m.1));
            let (sha, name) = matches.pop().ok_or_else(|| FetchError::NotInSums {
                url: sums_url.clone(),
                sums_url: sums_url.clone(),
                pattern: pattern.clone(),
            })?;
            let base = sums_url.rsplit_once('/').map_or("", |(b, _)| b);
            Ok(Some((format!("{base}/{name}"), sha)))
        }
    }
}

/// A sort key that orders `24.04.10` after `24.04.9`.
pub fn natural_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push((rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
            rest = &rest[digits..];
        } else {
            let text = rest.len() - rest.trim_start_matches(|c: char| !c.is_ascii_digit()).len();
            out.push((0, rest[..text].to_string()));
            rest = &rest[text..];
        }
    }
    out
}

/// The temporary name a download is written under.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut s = dest.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Downloads `url` to `dest`, checking it against `sha256`. Returns the size.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    sha256: &str,
    dest: &Path,
    opts: &FetchOptions,
) -> Result<u64, FetchError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let part = part_path(dest);
    // A part left by an earlier run is continued only if it was a download of
    // the same file (same digest): a new point release starts afresh.
    let part_record = verify::record_path(&part);
    if verify::read_record(&part).as_deref() != Some(sha256) {
        let _ = std::fs::remove_file(&part);
    }
    verify::write_record(&part, sha256).map_err(io_err(&part_record))?;
    let attempts = opts.attempts.max(1);
    let mut last_err = None;
    for attempt in 1..=attempts {
        if attempt > 1 {
            let wait = opts.backoff * 2u32.saturating_pow(attempt - 2);
            tracing::warn!(
                "{url}: {}; retrying in {wait:?} (attempt {attempt} of {attempts})",
                last_err
                    .as_ref()
                    .map(|e: &FetchError| e.to_string())
                    .unwrap_or_default()
            );
            tokio::time::sleep(wait).await;
        }
        match attempt_once(client, url, &part, opts).await {
            Ok((bytes, hasher)) => {
                let actual = hex::encode(hasher.finalize());
                if actual != sha256 {
                    let _ = std::fs::remove_file(&part);
                    let _ = std::fs::remove_file(&part_record);
                    return Err(FetchError::Checksum {
                        url: url.to_string(),
                        expected: sha256.to_string(),
                        actual,
                        bytes,
                    });
                }
                // The record first: a file under its final name always has one.
                verify::write_record(dest, sha256).map_err(io_err(dest))?;
                std::fs::rename(&part, dest).map_err(io_err(dest))?;
                let _ = std::fs::remove_file(&part_record);
                return Ok(bytes);
            }
            Err(Failure::Permanent(e)) => {
                let _ = std::fs::remove_file(&part);
                let _ = std::fs::remove_file(&part_record);
                return Err(e);
            }
            Err(Failure::Retry(e)) => last_err = Some(e),
        }
    }
    let got = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    Err(match last_err {
        Some(FetchError::Interrupted { detail, .. }) => FetchError::Interrupted {
            url: url.to_string(),
            attempts,
            got,
            detail,
        },
        Some(e) => e,
        None => unreachable!("the loop runs at least once"),
    })
}

enum Failure {
    Permanent(FetchError),
    Retry(FetchError),
}

/// One request: continues `part` if it holds bytes, else starts it.
async fn attempt_once(
    client: &reqwest::Client,
    url: &str,
    part: &Path,
    opts: &FetchOptions,
) -> Result<(u64, Sha256), Failure> {
    let io = |source| {
        Failure::Permanent(FetchError::Io {
            path: part.to_path_buf(),
            source,
        })
    };
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut req = client.get(url);
    if have > 0 {
        req = req.header(RANGE, format!("bytes={have}-"));
    }
    let resp = req.send().await.map_err(|e| {
        let e = classify(url, &e);
        match e {
            FetchError::Dns { .. } | FetchError::Tls { .. } => Failure::Permanent(e),
            _ => Failure::Retry(e),
        }
    })?;
    let status = resp.status();
    // A server that ignores Range answers 200 with the whole file: start over.
    let resumed = have > 0
        && status == StatusCode::PARTIAL_CONTENT
        && content_range_start(&resp) == Some(have);
    if have > 0 && status == StatusCode::RANGE_NOT_SATISFIABLE {
        // The part is as long as (or longer than) the file: rehash it as it is.
        let hasher = hash_existing(part).map_err(io)?;
        return Ok((have, hasher));
    }
    if status == StatusCode::PARTIAL_CONTENT && !resumed {
        // A range other than the one asked for: the part cannot be continued.
        let _ = std::fs::remove_file(part);
        return Err(Failure::Retry(FetchError::Interrupted {
            url: url.to_string(),
            attempts: 1,
            got: 0,
            detail: "the server answered a different range; starting over".into(),
        }));
    }
    let resp = match check_status(url, resp) {
        Ok(r) => r,
        Err(e @ FetchError::Status { status, .. })
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
        {
            return Err(Failure::Retry(e))
        }
        Err(e) => return Err(Failure::Permanent(e)),
    };
    let (mut file, mut hasher, mut got) = if resumed {
        let hasher = hash_existing(part).map_err(io)?;
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(part)
            .map_err(io)?;
        (f, hasher, have)
    } else {
        (std::fs::File::create(part).map_err(io)?, Sha256::new(), 0)
    };
    let total = resp.content_length().map(|l| l + got);
    let progress = Progress::new(url, total, got, opts.progress);
    let mut resp = resp;
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                hasher.update(&chunk);
                file.write_all(&chunk).map_err(io)?;
                got += chunk.len() as u64;
                progress.update(got);
            }
            Ok(None) => break,
            Err(e) => {
                progress.finish();
                file.flush().map_err(io)?;
                return Err(Failure::Retry(FetchError::Interrupted {
                    url: url.to_string(),
                    attempts: 1,
                    got,
                    detail: error_chain(&e),
                }));
            }
        }
    }
    progress.finish();
    file.sync_all().map_err(io)?;
    if let Some(t) = total {
        if got < t {
            return Err(Failure::Retry(FetchError::Interrupted {
                url: url.to_string(),
                attempts: 1,
                got,
                detail: format!("the body ended after {got} of {t} bytes"),
            }));
        }
    }
    Ok((got, hasher))
}

fn hash_existing(path: &Path) -> std::io::Result<Sha256> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h);
        }
        h.update(&buf[..n]);
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` answer.
fn content_range_start(resp: &reqwest::Response) -> Option<u64> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    v.strip_prefix("bytes ")?.split('-').next()?.parse().ok()
}

fn check_status(url: &str, resp: reqwest::Response) -> Result<reqwest::Response, FetchError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let hint = match status.as_u16() {
        404 | 410 => "the file is gone from the mirror (a new point release replaces the old one); check the URL in images/catalog.toml",
        401 | 403 => "access is refused; check any proxy in between",
        407 => "a proxy wants credentials; set HTTPS_PROXY with them",
        429 => "the mirror is rate-limiting; try again later",
        500..=599 => "the mirror has a problem; try again later or use another mirror",
        _ => "check the URL in images/catalog.toml",
    };
    Err(FetchError::Status {
        url: url.to_string(),
        status,
        hint,
    })
}

/// The error and all its causes, joined: reqwest's top message alone hides
/// whether DNS, TLS or the connection failed.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.join(": ")
}

fn classify(url: &str, e: &reqwest::Error) -> FetchError {
    let detail = error_chain(e);
    let lower = detail.to_lowercase();
    let url = url.to_string();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        FetchError::Dns { url, detail }
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        FetchError::Tls { url, detail }
    } else if e.is_connect() || e.is_timeout() {
        FetchError::Connect { url, detail }
    } else {
        FetchError::Interrupted {
            url,
            attempts: 1,
            got: 0,
            detail,
        }
    }
}

/// A bar on a terminal; a log line every 10 s otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    log: Option<std::sync::Mutex<Instant>>,
    start: Instant,
    start_bytes: u64,
    total: Option<u64>,
    name: String,
}

impl Progress {
    fn new(url: &str, total: Option<u64>, at: u64, enabled: bool) -> Progress {
        let name = url.rsplit('/').next().unwrap_or(url).to_string();
        let tty = enabled && std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(name.clone());
            bar.set_position(at);
            bar
        });
        Progress {
            bar,
            log: (enabled && !tty).then(|| std::sync::Mutex::new(Instant::now())),
            start: Instant::now(),
            start_bytes: at,
            total,
            name,
        }
    }

    fn update(&self, got: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(got);
        }
        if let Some(last) = &self.log {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= Duration::from_secs(10) {
                *last = Instant::now();
                let secs = self.start.elapsed().as_secs_f64().max(0.001);
                let rate = (got - self.start_bytes) as f64 / secs;
                let (of, eta) = match self.total {
                    Some(t) if rate > 0.0 => (
                        format!(" of {} MiB", t >> 20),
                        format!(", ETA {:.0} s", (t.saturating_sub(got)) as f64 / rate),
                    ),
                    _ => (String::new(), String::new()),
                };
                tracing::info!(
                    "{}: {} MiB{of} at {:.1} MiB/s{eta}",
                    self.name,
                    got >> 20,
                    rate / 1048576.0
                );
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
