//! HdrHistogram file formats for latency histograms.
//!
//! Latency histograms in this crate are `Histogram<u64>` recorded in nanoseconds
//! (bounds `1..=60_000_000_000`, 3 significant digits). This module writes and
//! reads them in the formats the HdrHistogram tools use:
//!
//! - [`write_hgrm`] / [`parse_hgrm`]: the "percentile distribution" text file
//!   (`.hgrm`) printed by Java's `outputPercentileDistribution(out, 5, 1e6)`
//!   and by `wrk2 -L`, with values in milliseconds. The HdrHistogram online
//!   plotter reads it.
//! - [`spectrum`]: the same points as (percentile, microseconds) pairs.
//! - [`IntervalLog`]: the interval log (`.hlog`) read by Java's
//!   `HistogramLogProcessor`, one compressed histogram per interval.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, IntervalLogWriterError};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

/// Percentile reporting ticks per half distance to 100%, as in Java's default.
const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Nanoseconds per millisecond: the `.hgrm` output value unit scaling ratio.
const NS_PER_MS: f64 = 1e6;

/// Nanoseconds per microsecond, for [`spectrum`].
const NS_PER_US: f64 = 1e3;

/// Decimals of values in the `.hgrm` file: Java prints as many as the
/// histogram's significant digits, which is 3 for the histograms of this crate.
const VALUE_DECIMALS: usize = 3;

/// Header line of the `.hgrm` file, as Java's `"%12s %14s %10s %14s\n\n"`.
const HGRM_HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n";

/// Legend line of an interval log, as Java's `HistogramLogWriter.outputLegend`.
const HLOG_LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";

/// Format version comment of an interval log, as Java's `HistogramLogWriter`.
const HLOG_VERSION: &str = "[Histogram log format version 1.3]";

/// Divisor applied to each interval's max in the log: nanoseconds to
/// milliseconds.
const HLOG_MAX_VALUE_DIVISOR: f64 = NS_PER_MS;

/// One point of the percentile iteration.
struct Point {
    /// Highest value equivalent to the bucket reached, in nanoseconds.
    value: u64,
    /// Quantile level iterated to, in `0..=1`.
    quantile: f64,
    /// Count of all values up to and including this bucket.
    total_count: u64,
}

/// The percentile points that Java's `PercentileIterator` yields with 5 ticks
/// per half distance, ending with exactly one point at quantile 1.0.
///
/// The crate's quantile iterator follows the same steps as Java's: when it
/// reaches the bucket of the largest value it yields one point at the current
/// level and then one final point at exactly 1.0, and stops. The loop below
/// stops at that point, and adds one from `max()` only if the iterator ended
/// without it, so the final row is never missing nor doubled.
fn points(h: &Histogram<u64>) -> Vec<Point> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    let mut total_count = 0u64;
    for v in h.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
        // The iterator reports the counts added since the previous point; their
        // running sum is Java's `getTotalCountToThisValue()`.
        total_count = total_count.saturating_add(v.count_since_last_iteration());
        let quantile = v.quantile_iterated_to();
        out.push(Point {
            value: v.value_iterated_to(),
            quantile,
            total_count,
        });
        if quantile >= 1.0 {
            return out;
        }
    }
    out.push(Point {
        value: h.max(),
        quantile: 1.0,
        total_count: h.len(),
    });
    out
}

/// Formats `x` with `decimals` fraction digits the way Java's `Formatter`
/// (`%.Nf`) does: the shortest decimal form of the double, rounded half up.
///
/// Rust's `{:.N}` rounds the exact binary value instead, which differs on
/// ties such as `0.125` (`"0.12"` in Rust, `"0.13"` in Java).
///
/// `x` is one of the file's numbers: never negative nor NaN (checked in
/// debug builds). Infinity prints as Java's `Infinity`.
fn java_fixed(x: f64, decimals: usize) -> String {
    debug_assert!(x >= 0.0, "java_fixed({x}): negative or NaN");
    if x.is_infinite() {
        return "Infinity".to_string();
    }
    // `Display` for f64 prints the shortest digits that read back to the same
    // value, never in exponent form.
    let shortest = format!("{x}");
    let (int_part, frac_part) = shortest.split_once('.').unwrap_or((&shortest, ""));
    let mut digits: Vec<u8> = int_part.bytes().collect();
    digits.extend(frac_part.bytes().take(decimals));
    digits.resize(int_part.len() + decimals, b'0');
    if frac_part
        .as_bytes()
        .get(decimals)
        .is_some_and(|&d| d >= b'5')
    {
        let mut carry = true;
        for d in digits.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                carry = false;
                break;
            }
        }
        if carry {
            digits.insert(0, b'1');
        }
    }
    let int_len = digits.len() - decimals;
    let mut s = String::with_capacity(digits.len() + 1);
    s.extend(digits[..int_len].iter().map(|&d| char::from(d)));
    if decimals > 0 {
        s.push('.');
        s.extend(digits[int_len..].iter().map(|&d| char::from(d)));
    }
    s
}

/// Java's `getMean()` and `getStdDeviation()`: sums of median-equivalent
/// values, divided once at the end (the crate's `mean()` divides each term,
/// which can differ in the last bits).
fn mean_and_stdev(h: &Histogram<u64>) -> (f64, f64) {
    if h.is_empty() {
        return (0.0, 0.0);
    }
    let total = h.len() as f64;
    let mut sum = 0.0f64;
    for v in h.iter_recorded() {
        let median = h.median_equivalent(v.value_iterated_to());
        sum += median.saturating_mul(v.count_at_value()) as f64;
    }
    let mean = sum / total;
    let mut dev_sum = 0.0f64;
    for v in h.iter_recorded() {
        let dev = h.median_equivalent(v.value_iterated_to()) as f64 - mean;
        dev_sum += dev * dev * v.count_since_last_iteration() as f64;
    }
    (mean, (dev_sum / total).sqrt())
}

/// Java's `subBucketCount`: the smallest power of two that is at least
/// `2 * 10^sigfig`, that is `2^ceil(log2(2 * 10^sigfig))`. The crate does not
/// expose it, so it is computed from `sigfig()` the same way.
fn sub_bucket_count(h: &Histogram<u64>) -> u64 {
    (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two()
}

/// Writes `h` (nanoseconds) as an HdrHistogram percentile distribution file
/// (`.hgrm`) with values in milliseconds.
///
/// The output matches Java HdrHistogram's
/// `outputPercentileDistribution(out, 5, 1e6)`: a header line and a blank
/// line, one row per percentile step (`%12.3f %2.12f %10d %14.2f`), a last
/// 100% row without the `1/(1-Percentile)` column, and three footer lines
/// with mean, standard deviation, max, total count, buckets and sub-buckets.
/// An empty histogram gives the header and the footer only.
pub fn write_hgrm<W: Write>(h: &Histogram<u64>, mut out: W) -> io::Result<()> {
    let mut text = String::from(HGRM_HEADER);
    for p in points(h) {
        let value = java_fixed(p.value as f64 / NS_PER_MS, VALUE_DECIMALS);
        let percentile = java_fixed(p.quantile, 12);
        // The 100% row has no `1/(1-Percentile)` column.
        let inverse = if p.quantile < 1.0 {
            format!(" {:>14}", java_fixed(1.0 / (1.0 - p.quantile), 2))
        } else {
            String::new()
        };
        text.push_str(&format!(
            "{value:>12} {percentile:>2} {:>10}{inverse}\n",
            p.total_count
        ));
    }
    let (mean, stdev) = mean_and_stdev(h);
    text.push_str(&format!(
        "#[Mean    = {:>12}, StdDeviation   = {:>12}]\n",
        java_fixed(mean / NS_PER_MS, VALUE_DECIMALS),
        java_fixed(stdev / NS_PER_MS, VALUE_DECIMALS)
    ));
    text.push_str(&format!(
        "#[Max     = {:>12}, Total count    = {:>12}]\n",
        java_fixed(h.max() as f64 / NS_PER_MS, VALUE_DECIMALS),
        h.len()
    ));
    // Buckets: the crate's `buckets()`, computed like Java's `bucketCount`
    // from the highest trackable value.
    text.push_str(&format!(
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]\n",
        h.buckets(),
        sub_bucket_count(h)
    ));
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The percentile points of `h` as `(percentile in 0..=100, value in
/// microseconds)`: the same points as the rows of [`write_hgrm`]. Empty for an
/// empty histogram.
pub fn spectrum(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    points(h)
        .into_iter()
        .map(|p| (p.quantile * 100.0, p.value as f64 / NS_PER_US))
        .collect()
}

/// One row of a `.hgrm` file.
#[derive(Clone, Debug, PartialEq)]
pub struct HgrmRow {
    /// Value in milliseconds.
    pub value_ms: f64,
    /// Percentile level of the row, in `0..=1`.
    pub percentile: f64,
    /// Count of values at or below `value_ms`.
    pub total_count: u64,
}

/// A parsed `.hgrm` percentile distribution file.
#[derive(Clone, Debug, PartialEq)]
pub struct Hgrm {
    /// The rows, in file order.
    pub rows: Vec<HgrmRow>,
    /// Mean from the `#[Mean ...]` footer line, in milliseconds.
    pub mean_ms: f64,
    /// Standard deviation from the `#[Mean ...]` footer line, in milliseconds.
    pub stdev_ms: f64,
    /// Max from the `#[Max ...]` footer line, in milliseconds.
    pub max_ms: f64,
    /// Total count from the `#[Max ...]` footer line.
    pub total_count: u64,
}

impl Hgrm {
    /// The value (ms) of the first row whose percentile is at least `p`
    /// (`p` in `0..=1`), which is how a reader finds "the p99" in the file.
    ///
    /// The rows are percentile steps (for example 0.990625 is the first step
    /// past 0.99), so the value returned is the one at the first step at or
    /// past `p`. `None` if no row reaches `p`.
    pub fn value_at_percentile(&self, p: f64) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.percentile >= p)
            .map(|r| r.value_ms)
    }
}

/// The two values of a footer line body such as
/// `Mean    =        1.064, StdDeviation   =        0.445`, whose keys must be
/// `keys`.
fn footer<'a>(body: &'a str, keys: [&str; 2]) -> Result<[&'a str; 2], String> {
    let fields: Vec<_> = body.split(',').map(|f| f.split_once('=')).collect();
    match fields.as_slice() {
        [Some((ka, a)), Some((kb, b))] if ka.trim() == keys[0] && kb.trim() == keys[1] => {
            Ok([a.trim(), b.trim()])
        }
        _ => Err(format!(
            "malformed footer line `#[{body}]`, expected `#[{} = ..., {} = ...]`",
            keys[0], keys[1]
        )),
    }
}

fn parse_f64(s: &str, what: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .map_err(|_| format!("{what} `{s}` is not a number"))
}

fn parse_u64(s: &str, what: &str) -> Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("{what} `{s}` is not a count"))
}

/// Parses a data row: value, percentile, total count and an optional
/// `1/(1-Percentile)` column (absent on Java's last row, `inf` in files from
/// the C library).
fn parse_row(line: &str) -> Result<HgrmRow, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if !(3..=4).contains(&fields.len()) {
        return Err(format!(
            "expected 3 or 4 columns (Value Percentile TotalCount [1/(1-Percentile)]), found {}",
            fields.len()
        ));
    }
    let value_ms = parse_f64(fields[0], "value")?;
    if !value_ms.is_finite() || value_ms < 0.0 {
        return Err(format!(
            "value `{}` is not a finite non-negative number",
            fields[0]
        ));
    }
    let percentile = parse_f64(fields[1], "percentile")?;
    if !(0.0..=1.0).contains(&percentile) {
        return Err(format!("percentile `{}` is not in 0..=1", fields[1]));
    }
    let total_count = parse_u64(fields[2], "total count")?;
    if let Some(inverse) = fields.get(3) {
        let inverse = parse_f64(inverse, "1/(1-Percentile)")?;
        if inverse.is_nan() {
            return Err("1/(1-Percentile) is NaN".to_string());
        }
    }
    Ok(HgrmRow {
        value_ms,
        percentile,
        total_count,
    })
}

/// Parses a `.hgrm` percentile distribution file, as written by
/// [`write_hgrm`], Java HdrHistogram's `outputPercentileDistribution`, or the
/// percentile spectrum block of `wrk2 -L`.
///
/// Blank lines, leading whitespace, the `Value Percentile ...` header and
/// `#` comment lines other than the footer are skipped. The `#[Mean ...]` and
/// `#[Max ...]` footer lines are required. Any other line is an error that
/// names its line number (counting from 1).
pub fn parse_hgrm(text: &str) -> Result<Hgrm, String> {
    let mut rows = Vec::new();
    let mut mean_stdev = None;
    let mut max_total = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let at = |e: String| format!("line {line_no}: {e}");
        let line = raw.trim();
        if line.is_empty() || line.starts_with("Value") {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let Some(body) = comment.strip_prefix('[').and_then(|b| b.strip_suffix(']')) else {
                continue;
            };
            if body.starts_with("Mean") {
                let [mean, stdev] = footer(body, ["Mean", "StdDeviation"]).map_err(at)?;
                mean_stdev = Some((
                    parse_f64(mean, "mean").map_err(at)?,
                    parse_f64(stdev, "standard deviation").map_err(at)?,
                ));
            } else if body.starts_with("Max") {
                let [max, total] = footer(body, ["Max", "Total count"]).map_err(at)?;
                max_total = Some((
                    parse_f64(max, "max").map_err(at)?,
                    parse_u64(total, "total count").map_err(at)?,
                ));
            }
            continue;
        }
        rows.push(parse_row(line).map_err(at)?);
    }
    let (mean_ms, stdev_ms) =
        mean_stdev.ok_or_else(|| "missing `#[Mean = ..., StdDeviation = ...]` line".to_string())?;
    let (max_ms, total_count) =
        max_total.ok_or_else(|| "missing `#[Max = ..., Total count = ...]` line".to_string())?;
    Ok(Hgrm {
        rows,
        mean_ms,
        stdev_ms,
        max_ms,
        total_count,
    })
}

/// An HdrHistogram interval log (`.hlog`) file, one histogram per interval,
/// readable by Java's `HistogramLogProcessor` and the crate's
/// `IntervalLogIterator`.
///
/// The header (format version, `#[StartTime: ...]`, `#[BaseTime: ...]`, the
/// max value divisor and the legend) is written once by [`IntervalLog::create`].
/// Interval start times are offsets from the base time. Histogram values stay
/// in nanoseconds; the `Interval_Max` column is divided by 1e6 (the log's max
/// value divisor) so tools show it in milliseconds.
pub struct IntervalLog {
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
    /// Builder for interval lines: no header but the max value divisor.
    intervals: IntervalLogWriterBuilder,
    /// What `intervals` writes before the first interval (the divisor line),
    /// stripped from each interval written.
    interval_prefix: Vec<u8>,
    /// Buffer for one interval line.
    line: Vec<u8>,
}

impl fmt::Debug for IntervalLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntervalLog")
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

fn log_error(
    e: IntervalLogWriterError<hdrhistogram::serialization::V2DeflateSerializeError>,
) -> io::Error {
    match e {
        IntervalLogWriterError::IoError(e) => e,
        IntervalLogWriterError::SerializeError(e) => {
            io::Error::other(format!("cannot serialize histogram: {e:?}"))
        }
    }
}

impl IntervalLog {
    /// Creates (or truncates) the log file at `path` and writes its header,
    /// with `start` as both the StartTime and the BaseTime.
    pub fn create(path: &Path, start: SystemTime) -> io::Result<IntervalLog> {
        let file = File::create(path)?;
        let mut out = BufWriter::new(file);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(HLOG_VERSION)
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(HLOG_MAX_VALUE_DIVISOR)
            .begin_log_with(&mut out, &mut serializer)?;
        out.write_all(HLOG_LEGEND.as_bytes())?;

        // The crate's writer borrows its output, so each interval is written
        // by a new writer into `line`. Such a writer first writes the header
        // of its builder; with only a divisor set that is one fixed line,
        // recorded here and stripped from every interval.
        let mut intervals = IntervalLogWriterBuilder::new();
        intervals.with_max_value_divisor(HLOG_MAX_VALUE_DIVISOR);
        let mut interval_prefix = Vec::new();
        intervals.begin_log_with(&mut interval_prefix, &mut serializer)?;
        Ok(IntervalLog {
            out,
            serializer,
            intervals,
            interval_prefix,
            line: Vec::new(),
        })
    }

    /// Appends one interval that started `start_offset` after the log's start
    /// time and lasted `length`, holding the values of `h` (nanoseconds).
    pub fn write(
        &mut self,
        start_offset: Duration,
        length: Duration,
        h: &Histogram<u64>,
    ) -> io::Result<()> {
        self.line.clear();
        self.intervals
            .begin_log_with(&mut self.line, &mut self.serializer)?
            .write_histogram(h, start_offset, length, None)
            .map_err(log_error)?;
        let interval = self
            .line
            .strip_prefix(self.interval_prefix.as_slice())
            .ok_or_else(|| io::Error::other("interval log writer wrote an unexpected header"))?;
        self.out.write_all(interval)
    }

    /// Flushes the log to its file.
    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::report::latency_histogram;
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    fn hgrm_text(h: &Histogram<u64>) -> String {
        let mut buf = Vec::new();
        write_hgrm(h, &mut buf).expect("write to Vec");
        String::from_utf8(buf).expect("utf-8")
    }

    /// Nanoseconds to whole microseconds rounded half up, the way the file
    /// prints milliseconds with 3 decimals.
    fn ns_to_us_half_up(ns: u64) -> u64 {
        (ns + 500) / 1000
    }

    /// A file value (ms, 3 decimals) as whole microseconds.
    fn ms_to_us(ms: f64) -> u64 {
        (ms * 1000.0).round() as u64
    }

    #[test]
    fn tiny_histogram_matches_java_output() {
        // 1, 2 and 3 ms in nanoseconds. With 3 significant digits the buckets
        // are [999936, 1000447] (unit 512), [1999872, 2000895] (unit 1024) and
        // [2998272, 3000319] (unit 2048): rows print the highest equivalent
        // value, the footer mean and deviation use the bucket medians
        // 1000192, 2000384 and 2999296 (mean 1.99996 ms, deviation 0.81613
        // ms), and the max is 3000319 ns. Levels step by 0.1 up to 0.5, then
        // by 0.05; a row is printed at each level reached by the running
        // count (1/3, 2/3, 3/3), then the 100% row. Buckets: 2048 << 25 is
        // the first power-of-two multiple of 2048 above 60e9, so 26 buckets.
        let mut h = latency_histogram();
        for ms in 1..=3u64 {
            h.record(ms * 1_000_000).expect("in range");
        }
        let expected = "       Value     Percentile TotalCount 1/(1-Percentile)

       1.000 0.000000000000          1           1.00
       1.000 0.100000000000          1           1.11
       1.000 0.200000000000          1           1.25
       1.000 0.300000000000          1           1.43
       2.001 0.400000000000          2           1.67
       2.001 0.500000000000          2           2.00
       2.001 0.550000000000          2           2.22
       2.001 0.600000000000          2           2.50
       2.001 0.650000000000          2           2.86
       3.000 0.700000000000          3           3.33
       3.000 1.000000000000          3
#[Mean    =        2.000, StdDeviation   =        0.816]
#[Max     =        3.000, Total count    =            3]
#[Buckets =           26, SubBuckets     =         2048]
";
        assert_eq!(hgrm_text(&h), expected);
    }

    #[test]
    fn round_trip_matches_histogram_quantiles() {
        let mut h = latency_histogram();
        for us in 1..=100_000u64 {
            h.record(us * 1000).expect("in range");
        }
        let outliers = [
            250_000_000u64,
            500_000_000,
            1_000_000_000,
            2_000_000_000,
            5_000_000_000,
            10_000_000_000,
            30_000_000_000,
        ];
        for ns in outliers {
            h.record(ns).expect("in range");
        }
        let parsed = parse_hgrm(&hgrm_text(&h)).expect("parses");

        assert_eq!(parsed.total_count, 100_007);
        assert_eq!(parsed.total_count, h.len());
        assert_eq!(ms_to_us(parsed.max_ms), ns_to_us_half_up(h.max()));
        assert_eq!(ms_to_us(parsed.max_ms), 30_014_439);
        assert!((parsed.mean_ms - h.mean() / NS_PER_MS).abs() <= 0.0005 + 1e-9);
        assert!((parsed.stdev_ms - h.stdev() / NS_PER_MS).abs() <= 0.0005 + 1e-9);
        assert_eq!(parsed.rows.last().map(|r| r.total_count), Some(h.len()));

        // The rows are the iterator's levels, not round percentiles: with 5
        // ticks per half distance the first levels at or past 0.99 and 0.999
        // are 0.990625 and 0.9990234375. `value_at_percentile(p)` returns the
        // value of that row, so it is compared with the histogram's own
        // `value_at_quantile` (a separate scan of the counts) at the row's
        // level. The total (100_007) makes no level times the total an exact
        // integer, so the iterator's `count / total >= level` and
        // `value_at_quantile`'s `count >= ceil(level * total)` pick the same
        // bucket. Both sides are compared as whole microseconds, which is
        // exact to the file's 0.001 ms.
        let cases = [
            (0.5, 0.5),
            (0.9, 0.9),
            (0.99, 0.990625),
            (0.999, 0.9990234375),
            (1.0, 1.0),
        ];
        for (p, level) in cases {
            let row = parsed
                .rows
                .iter()
                .find(|r| r.percentile >= p)
                .expect("a row at or past p");
            assert_eq!(row.percentile, level, "row level for p = {p}");
            let file_ms = parsed.value_at_percentile(p).expect("value");
            let hist_ns = h.value_at_quantile(level);
            assert_eq!(
                ms_to_us(file_ms),
                ns_to_us_half_up(hist_ns),
                "p = {p}: file {file_ms} ms, histogram {hist_ns} ns"
            );
            // A reader's p-th percentile from the file is never below the
            // histogram's own value at p.
            assert!(ms_to_us(file_ms) >= ns_to_us_half_up(h.value_at_quantile(p)));
        }
        // Known values, worked out by hand. p50: ceil(0.5 * 100_007) = 50_004,
        // the 50_004th value is 50_004_000 ns, whose bucket (unit 2^15 ns)
        // ends at 50_036_735 ns. p100: 30e9 ns is in a bucket of unit 2^24 ns
        // ending at 30_014_439_423 ns.
        assert_eq!(parsed.value_at_percentile(0.5).map(ms_to_us), Some(50_037));
        assert_eq!(
            parsed.value_at_percentile(1.0).map(ms_to_us),
            Some(30_014_439)
        );
        assert_eq!(parsed.value_at_percentile(1.5), None);

        // The spectrum has the same points, in percent and microseconds.
        let points = spectrum(&h);
        assert_eq!(points.len(), parsed.rows.len());
        for ((pct, us), row) in points.iter().zip(&parsed.rows) {
            assert!((pct / 100.0 - row.percentile).abs() < 1e-12);
            assert!((us / 1000.0 - row.value_ms).abs() <= 0.0005 + 1e-9);
        }
    }

    #[test]
    fn final_row_is_single_and_at_100_percent() {
        let shapes: [&[u64]; 5] = [
            &[5_000],
            &[0],
            &[1_000, 1_000, 1_000],
            &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10_000_000_000],
            &[7_000_000; 1000],
        ];
        for values in shapes {
            let mut h = latency_histogram();
            for &v in values {
                h.record(v).expect("in range");
            }
            let parsed = parse_hgrm(&hgrm_text(&h)).expect("parses");
            let full: Vec<_> = parsed.rows.iter().filter(|r| r.percentile == 1.0).collect();
            assert_eq!(full.len(), 1, "values {values:?}");
            assert_eq!(parsed.rows.last(), Some(full[0]));
            assert_eq!(full[0].total_count, values.len() as u64);
            assert_eq!(ms_to_us(full[0].value_ms), ns_to_us_half_up(h.max()));
        }
    }

    #[test]
    fn empty_histogram_writes_header_and_footer() {
        let h = latency_histogram();
        let text = hgrm_text(&h);
        let expected = "       Value     Percentile TotalCount 1/(1-Percentile)

#[Mean    =        0.000, StdDeviation   =        0.000]
#[Max     =        0.000, Total count    =            0]
#[Buckets =           26, SubBuckets     =         2048]
";
        assert_eq!(text, expected);
        let parsed = parse_hgrm(&text).expect("parses");
        assert_eq!(parsed.total_count, 0);
        assert!(parsed.rows.is_empty());
        assert_eq!(parsed.value_at_percentile(0.99), None);
        assert!(spectrum(&h).is_empty());
    }

    #[test]
    fn parse_rejects_garbled_row_and_names_line() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)

       1.000 0.000000000000          1           1.00
       1.000 0.1000x0000000          1           1.11
       3.000 1.000000000000          3
#[Mean    =        2.000, StdDeviation   =        0.816]
#[Max     =        3.000, Total count    =            3]
";
        let err = parse_hgrm(text).expect_err("garbled percentile");
        assert!(err.starts_with("line 4:"), "{err}");
        assert!(err.contains("0.1000x0000000"), "{err}");

        let err = parse_hgrm("\n\nhello world\n").expect_err("garbage");
        assert!(err.starts_with("line 3:"), "{err}");

        let err = parse_hgrm("  1.000 1.5 3\n").expect_err("percentile above 1");
        assert!(err.starts_with("line 1:"), "{err}");

        let err = parse_hgrm("#[Mean    = abc, StdDeviation   = 1]\n").expect_err("footer");
        assert!(err.starts_with("line 1:"), "{err}");

        let err = parse_hgrm("  1.000 1.0 3\n").expect_err("no footer");
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn parse_accepts_wrk2_style_block() {
        // Spacing and 6-decimal percentiles as the C library prints them,
        // with extra blank lines, indentation and an `inf` last column.
        let text = "
  #[Overall percentile distribution]
       Value   Percentile   TotalCount 1/(1-Percentile)

       0.348     0.000000            1         1.00

       1.070     0.500000         2497         2.00
       2.838     1.000000         4985          inf
#[Mean    =        1.064, StdDeviation   =        0.445]
#[Max     =        2.838, Total count    =         4985]
#[Buckets =           27, SubBuckets     =         2048]
";
        let parsed = parse_hgrm(text).expect("parses");
        assert_eq!(parsed.rows.len(), 3);
        assert_eq!(parsed.total_count, 4985);
        assert_eq!(parsed.max_ms, 2.838);
        assert_eq!(parsed.mean_ms, 1.064);
        assert_eq!(parsed.stdev_ms, 0.445);
        assert_eq!(parsed.value_at_percentile(0.4), Some(1.070));
        assert_eq!(parsed.value_at_percentile(0.0), Some(0.348));
    }

    #[test]
    fn java_fixed_rounds_half_up() {
        assert_eq!(java_fixed(0.125, 2), "0.13");
        assert_eq!(java_fixed(0.0015, 3), "0.002");
        assert_eq!(java_fixed(0.9997802734375, 12), "0.999780273438");
        assert_eq!(java_fixed(9.9996, 3), "10.000");
        assert_eq!(java_fixed(2.5, 0), "3");
        assert_eq!(java_fixed(1e-7, 3), "0.000");
        assert_eq!(java_fixed(1.0, 12), "1.000000000000");
        assert_eq!(java_fixed(1234567.0, 2), "1234567.00");
        assert_eq!(java_fixed(f64::INFINITY, 2), "Infinity");
    }

    #[test]
    fn interval_log_round_trip() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("log.hlog");
        let start = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut log = IntervalLog::create(&file, start).expect("create log");
        let mut expected = Vec::new();
        for i in 0..3u64 {
            let mut h = latency_histogram();
            for v in 0..(10 * (i + 1)) {
                h.record(1_000_000 * (i + 1) + v * 1000).expect("in range");
            }
            let offset = Duration::from_millis(1250 * i);
            log.write(offset, Duration::from_secs(1), &h)
                .expect("write interval");
            expected.push((offset, h));
        }
        log.finish().expect("finish");

        let bytes = std::fs::read(&file).expect("read log");
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert_eq!(
            text.matches("#[Histogram log format version 1.3]").count(),
            1
        );
        assert_eq!(text.matches("#[StartTime: ").count(), 1, "{text}");
        assert_eq!(text.matches("#[BaseTime: ").count(), 1, "{text}");
        assert_eq!(text.matches("#[MaxValueDivisor: ").count(), 1, "{text}");
        assert_eq!(text.matches("\"StartTimestamp\",").count(), 1, "{text}");

        let mut starts = Vec::new();
        let mut bases = Vec::new();
        let mut intervals = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            match entry.expect("valid log entry") {
                LogEntry::StartTime(t) => starts.push(t),
                LogEntry::BaseTime(t) => bases.push(t),
                LogEntry::Interval(ilh) => {
                    let raw = STANDARD.decode(ilh.encoded_histogram()).expect("base64");
                    let h: Histogram<u64> = Deserializer::new()
                        .deserialize(&mut raw.as_slice())
                        .expect("deserialize");
                    intervals.push((ilh.start_timestamp(), ilh.duration(), ilh.max(), h));
                }
            }
        }
        let since_epoch = Duration::from_millis(1_700_000_000_123);
        assert_eq!(starts, vec![since_epoch]);
        assert_eq!(bases, vec![since_epoch]);
        assert_eq!(intervals.len(), 3);
        for ((start, length, max, got), (offset, want)) in intervals.iter().zip(&expected) {
            assert_eq!(start, offset);
            assert_eq!(*length, Duration::from_secs(1));
            assert_eq!(got.len(), want.len());
            assert_eq!(got.max(), want.max());
            assert_eq!(got.value_at_quantile(0.5), want.value_at_quantile(0.5));
            // The max column is in milliseconds (divisor 1e6).
            assert!((max - want.max() as f64 / 1e6).abs() <= 0.0005 + 1e-9);
        }
        assert_eq!(
            intervals.iter().map(|i| i.3.len()).collect::<Vec<_>>(),
            vec![10, 20, 30]
        );
    }
}
