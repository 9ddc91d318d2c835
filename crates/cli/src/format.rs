//! Output formatting as the docker CLI prints it: tab-aligned tables, human durations and
//! sizes, truncation with `…`, Go `--format` templates with docker's functions, and JSON
//! re-indented like Go's `json.Indent`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{Template, TemplateError, Value};

/// Aligns tab-separated lines like docker's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`:
/// each column but the last is padded to max(widest cell + 3, 10) characters.
pub fn align(lines: &[String]) -> String {
    let rows: Vec<Vec<&str>> = lines.iter().map(|l| l.split('\t').collect()).collect();
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; ncols];
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                let w = (widths[i] + 3).max(10);
                line.extend(std::iter::repeat_n(' ', w - c.chars().count()));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// Truncates to `max` characters, the last one being `…` (docker's `Ellipsis`).
pub fn ellipsis(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Go's `units.HumanDuration`: `Less than a second`, `5 seconds`, `About a minute`, `3 days`…
pub fn human_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let minutes = secs / 60;
    let hours = ((secs as f64) / 3600.0 + 0.5) as i64;
    if secs < 1 {
        "Less than a second".to_owned()
    } else if secs == 1 {
        "1 second".to_owned()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if minutes == 1 {
        "About a minute".to_owned()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_owned()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (secs as f64 / 3600.0 / 24.0 / 365.0) as i64)
    }
}

/// `5 seconds ago` for a unix timestamp relative to `now`.
pub fn ago(created: i64, now: i64) -> String {
    format!("{} ago", human_duration(now - created))
}

/// Go's `%.{prec}g`: shortest of %e/%f, trailing zeros removed.
fn go_g(x: f64, prec: usize) -> String {
    if x == 0.0 {
        return "0".to_owned();
    }
    let e = format!("{:.*e}", prec.saturating_sub(1), x);
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s.to_owned() }
    };
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mant), exp.abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{x:.decimals$}"))
    }
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)` (what `images` prints): decimal
/// units, e.g. `4.26MB`.
pub fn human_size(size: f64) -> String {
    human_size_precision(size, 3)
}

/// Docker's `units.HumanSizeWithPrecision(size, precision)`; `system df` uses 4.
pub fn human_size_precision(size: f64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1000.0 && i + 1 < UNITS.len() {
        s /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(s, precision), UNITS[i])
}

/// Docker's `units.BytesSize` (what `stats` prints for memory): binary units with four
/// significant digits, e.g. `1.535MiB`.
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut s = size;
    let mut i = 0;
    while s >= 1024.0 && i + 1 < UNITS.len() {
        s /= 1024.0;
        i += 1;
    }
    format!("{}{}", go_g(s, 4), UNITS[i])
}

/// Re-indents JSON text like Go's `json.Indent(dst, src, "", indent)`, keeping key order and
/// string bytes exactly as the daemon sent them; empty `{}`/`[]` stay compact.
pub fn indent_json(src: &str, indent: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    let mut chars = src.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    };
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => {}
            '"' => {
                in_str = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                let close = if c == '{' { '}' } else { ']' };
                if chars.peek() == Some(&close) {
                    chars.next();
                    out.push(close);
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c => out.push(c),
        }
    }
    out
}

/// Converts a template value back to JSON for the `json` function.
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
        }
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
    }
}

/// Go's `json.Marshal` escapes HTML-significant characters; docker's `json` function does too.
fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(&to_json(v)).unwrap_or_else(|_| "null".to_owned());
    s.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

fn str_arg(args: &[Value], i: usize, f: &str) -> Result<String, TemplateError> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.to_string()),
        Some(v) => Ok(v.to_string()),
        None => Err(TemplateError::Exec(format!("{f}: missing argument {}", i + 1))),
    }
}

fn int_arg(args: &[Value], i: usize, f: &str) -> Result<i64, TemplateError> {
    args.get(i)
        .and_then(Value::as_int)
        .ok_or_else(|| TemplateError::Exec(format!("{f}: argument {} must be an integer", i + 1)))
}

fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// Parses a user `--format` with docker's template functions registered.
pub fn parse_template(src: &str) -> Result<Template, TemplateError> {
    Template::new("")
        .func("json", |a| Ok(Value::String(go_json(a.first().unwrap_or(&Value::Nil)).into())))
        .func("upper", |a| Ok(Value::String(str_arg(a, 0, "upper")?.to_uppercase().into())))
        .func("lower", |a| Ok(Value::String(str_arg(a, 0, "lower")?.to_lowercase().into())))
        .func("title", |a| Ok(Value::String(title_case(&str_arg(a, 0, "title")?).into())))
        .func("split", |a| {
            let s = str_arg(a, 0, "split")?;
            let sep = str_arg(a, 1, "split")?;
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string().into())).collect()
            } else {
                s.split(sep.as_str()).map(|p| Value::String(p.into())).collect()
            };
            Ok(Value::List(parts.into()))
        })
        .func("join", |a| {
            let sep = str_arg(a, 1, "join")?;
            let items: Vec<String> = match a.first() {
                Some(Value::List(l)) => l.iter().map(|v| v.to_string()).collect(),
                Some(Value::Nil) | None => Vec::new(),
                Some(v) => vec![v.to_string()],
            };
            Ok(Value::String(items.join(&sep).into()))
        })
        .func("truncate", |a| {
            let s = str_arg(a, 0, "truncate")?;
            let n = int_arg(a, 1, "truncate")?.max(0) as usize;
            Ok(Value::String(s.chars().take(n).collect::<String>().into()))
        })
        .func("pad", |a| {
            let s = str_arg(a, 0, "pad")?;
            let l = int_arg(a, 1, "pad")?.max(0) as usize;
            let r = int_arg(a, 2, "pad")?.max(0) as usize;
            Ok(Value::String(format!("{}{s}{}", " ".repeat(l), " ".repeat(r)).into()))
        })
        .parse(src)
}

/// A `--format` value split into its template and whether it asked for a `table`.
pub struct Format {
    /// The template body (after `table ` and with `\t`/`\n` escapes expanded).
    pub template: String,
    /// True for `table …` formats, which print a header and align columns.
    pub table: bool,
}

impl Format {
    /// Interprets a `--format` string as docker does.
    pub fn new(s: &str) -> Format {
        let expanded = s.replace("\\t", "\t").replace("\\n", "\n");
        match expanded.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with([' ', '\t']) => {
                Format { template: rest.trim_start_matches([' ']).to_owned(), table: true }
            }
            _ => Format { template: expanded, table: false },
        }
    }
}

/// Renders `rows` with a `--format`. `headers` maps field names to column titles for the
/// header line of table formats. Returns the text to print.
pub fn render(format: &Format, headers: &BTreeMap<&str, &str>, rows: &[Value]) -> Result<String, TemplateError> {
    let t = parse_template(&format.template)?;
    let mut lines = Vec::new();
    if format.table {
        let hv: BTreeMap<Arc<str>, Value> =
            headers.iter().map(|(k, v)| (Arc::<str>::from(*k), Value::String((*v).into()))).collect();
        let h = t.execute_to_string(&Value::Map(Arc::new(hv)))?;
        lines.push(h);
    }
    for r in rows {
        lines.push(t.execute_to_string(r)?);
    }
    if format.table {
        let split: Vec<String> =
            lines.iter().flat_map(|l| l.split('\n').map(str::to_owned).collect::<Vec<_>>()).collect();
        Ok(align(&split))
    } else {
        let mut out = String::new();
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
        Ok(out)
    }
}

/// Builds a template value from string fields (docker's ps/images contexts).
pub fn string_map(fields: &[(&str, String)]) -> Value {
    let m: BTreeMap<Arc<str>, Value> =
        fields.iter().map(|(k, v)| (Arc::<str>::from(*k), Value::String(v.as_str().into()))).collect();
    Value::Map(Arc::new(m))
}

/// Converts any serde value (inspect output) into a template value.
pub fn to_value(v: &serde_json::Value) -> Result<Value, TemplateError> {
    gotmpl::to_value(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_alignment() {
        let t = align(&["CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES".to_owned()]);
        assert_eq!(t, "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n");
        let t = align(&["A\tB".to_owned(), "longer-than-ten-cells\tx".to_owned()]);
        assert_eq!(t, "A                       B\nlonger-than-ten-cells   x\n");
        assert_eq!(align(&["\"sh -c 'sleep…\"\tz".to_owned()]).lines().next().unwrap().chars().count(), 19);
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(180), "3 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_duration(20 * 86400), "2 weeks");
        assert_eq!(human_duration(90 * 86400), "3 months");
        assert_eq!(human_duration(800 * 86400), "2 years");
        assert_eq!(ago(100, 105), "5 seconds ago");
        assert_eq!(human_size(4_262_912.0), "4.26MB");
        assert_eq!(human_size(0.0), "0B");
        assert_eq!(human_size(123.0), "123B");
        assert_eq!(human_size(1234.0), "1.23kB");
        assert_eq!(human_size(100_000.0), "100kB");
        assert_eq!(human_size(7_800_000_000.0), "7.8GB");
        assert_eq!(human_size(999_999.0), "1e+03kB");
        assert_eq!(ellipsis("sh -c 'sleep 1000; echo done'", 20), "sh -c 'sleep 1000; …");
        assert_eq!(ellipsis("short", 20), "short");
    }

    #[test]
    fn json_indent() {
        let raw = r#"{"Id":"abc","Config":{"Env":["A=1","B=\"x,y\""],"Labels":{}},"Args":[]}"#;
        let want = "{\n    \"Id\": \"abc\",\n    \"Config\": {\n        \"Env\": [\n            \"A=1\",\n            \"B=\\\"x,y\\\"\"\n        ],\n        \"Labels\": {}\n    },\n    \"Args\": []\n}";
        assert_eq!(indent_json(raw, "    "), want);
    }

    fn ctx() -> Vec<Value> {
        vec![
            string_map(&[("ID", "abc123".to_owned()), ("Names", "web".to_owned()), ("Image", "nginx".to_owned())]),
            string_map(&[
                ("ID", "def".to_owned()),
                ("Names", "db-primary".to_owned()),
                ("Image", "postgres".to_owned()),
            ]),
        ]
    }

    #[test]
    fn templates() {
        let h: BTreeMap<&str, &str> = [("ID", "CONTAINER ID"), ("Names", "NAMES"), ("Image", "IMAGE")].into();
        let out = render(&Format::new("{{.ID}}"), &h, &ctx()).unwrap();
        assert_eq!(out, "abc123\ndef\n");
        let out = render(&Format::new("table {{.ID}}\\t{{.Names}}"), &h, &ctx()).unwrap();
        assert_eq!(out, "CONTAINER ID   NAMES\nabc123         web\ndef            db-primary\n");
        let out = render(&Format::new("{{json .}}"), &h, &ctx()[..1]).unwrap();
        assert_eq!(out, "{\"ID\":\"abc123\",\"Image\":\"nginx\",\"Names\":\"web\"}\n");
        let out = render(&Format::new("{{upper .Names}} {{lower \"AB\"}} {{title \"hello world\"}}"), &h, &ctx()[..1])
            .unwrap();
        assert_eq!(out, "WEB ab Hello World\n");
        let out = render(
            &Format::new("{{join (split .Names \"-\") \",\"}}|{{truncate .Image 3}}|{{pad .ID 1 2}}|"),
            &h,
            &ctx()[1..],
        )
        .unwrap();
        assert_eq!(out, "db,primary|pos| def  |\n");
        let v: serde_json::Value = serde_json::json!({"State": {"Status": "running", "ExitCode": 0}, "Name": "/web"});
        let out = render(&Format::new("{{.State.Status}} {{.State.ExitCode}} {{.Name}}"), &h, &[to_value(&v).unwrap()])
            .unwrap();
        assert_eq!(out, "running 0 /web\n");
        let out = render(&Format::new("{{json .State}}"), &h, &[to_value(&v).unwrap()]).unwrap();
        assert_eq!(out, "{\"ExitCode\":0,\"Status\":\"running\"}\n");
        assert!(render(&Format::new("{{.ID"), &h, &ctx()).is_err());
    }
}
