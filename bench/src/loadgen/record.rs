//! Run records leaving the tool: appended to a JSON Lines file
//! (`--json FILE`) or to a CSV file (`--csv FILE`), one record per run, so
//! that runs made one after another collect in one file.
//!
//! A CSV row is the record flattened: nested members become
//! `outer.inner` columns, arrays (the latency spectrum) are left out, and
//! null is an empty cell. The header is written when the file is new; a
//! file whose header differs (a record of another scenario, say) is
//! refused rather than mixed.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;

use serde_json::Value;

/// Appends `record` as one line of JSON to `path`.
pub fn append_json(path: &Path, record: &Value) -> io::Result<()> {
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    writeln!(f, "{record}")
}

/// Appends `record` as one CSV row to `path`, after a header if the file is
/// new or empty.
pub fn append_csv(path: &Path, record: &Value) -> io::Result<()> {
    let cells = flatten(record);
    let header = cells
        .iter()
        .map(|(k, _)| csv_cell(k))
        .collect::<Vec<_>>()
        .join(",");
    let existing = match std::fs::File::open(path) {
        Ok(f) => BufReader::new(f).lines().next().transpose()?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    match existing {
        None => writeln!(f, "{header}")?,
        Some(h) if h == header => {}
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} holds records with other columns (another scenario, or a run with and one \
without --rate, or other --percentiles); use one file per kind of run",
                    path.display()
                ),
            ))
        }
    }
    let row = cells
        .iter()
        .map(|(_, v)| csv_cell(v))
        .collect::<Vec<_>>()
        .join(",");
    writeln!(f, "{row}")
}

/// The record's scalar members as `(column, text)`, in order; nested
/// objects as `outer.inner`; arrays left out.
pub fn flatten(record: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    walk("", record, &mut out);
    out
}

fn walk(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                walk(&key, v, out);
            }
        }
        Value::Array(_) => {}
        Value::Null => out.push((prefix.to_string(), String::new())),
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `s` as a CSV cell: quoted when it holds a comma, a quote or a line break.
fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattening_names_nested_columns_and_skips_arrays() {
        let r = json!({"a": 1, "b": {"c": "x,y", "d": null}, "e": [1, 2], "f": true});
        assert_eq!(
            flatten(&r),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b.c".to_string(), "x,y".to_string()),
                ("b.d".to_string(), String::new()),
                ("f".to_string(), "true".to_string()),
            ]
        );
    }

    #[test]
    fn csv_rows_append_under_one_header_and_other_columns_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runs.csv");
        append_csv(&p, &json!({"a": 1, "b": "say \"hi\", twice"})).unwrap();
        append_csv(&p, &json!({"a": 2, "b": "plain"})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "a,b\n1,\"say \"\"hi\"\", twice\"\n2,plain\n");
        let err = append_csv(&p, &json!({"z": 1})).unwrap_err();
        assert!(err.to_string().contains("other columns"), "{err}");
    }

    #[test]
    fn json_lines_append_one_record_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runs.jsonl");
        append_json(&p, &json!({"run": 1})).unwrap();
        append_json(&p, &json!({"run": 2})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let runs: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(runs, vec![json!({"run": 1}), json!({"run": 2})]);
    }
}
