//! Seeded generators for the fuzz harness: a splitmix64 PRNG, a JSON writer with the spellings
//! providers use (compact, spaced, pretty, `\u`-escaped), SSE framing, and byte and value
//! mutations; `transcripts` and `bodies` build realistic streams and request/answer bodies.

mod bodies;
mod transcripts;

pub use bodies::*;
pub use transcripts::*;

use serde_json::{json, Value};

/// Token counts past 2^53 (up to 2^64 − 1) in provider-reported usage: provider numbers are
/// untrusted and must saturate (issue 12 item 6). A switch so a run can isolate other findings.
pub const HUGE_NUMBERS: bool = true;

/// splitmix64: tiny, fast, and every seed gives a full-period, well-mixed sequence.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// JSON spellings
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Compact,
    /// `{"a": 1, "b": 2}`, as Python's `json.dumps` writes it.
    Spaced,
    /// Multi-line; as SSE data it becomes several `data:` lines.
    Pretty,
    /// Some characters of keys and strings written as `\u` escapes (surrogate pairs for emoji).
    Escaped,
}

const STYLES: [Style; 4] = [Style::Compact, Style::Spaced, Style::Pretty, Style::Escaped];

pub fn style(rng: &mut Rng) -> Style {
    rng.pick(&STYLES)
}

pub fn write_json(rng: &mut Rng, v: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(rng, v, style, 0, &mut out);
    out
}

fn write_value(rng: &mut Rng, v: &Value, style: Style, depth: usize, out: &mut String) {
    // Before item `i` of a container at `depth`: the comma, and the space or new line.
    let gap = |out: &mut String, i: usize| {
        if i > 0 {
            out.push(',');
            if style == Style::Spaced {
                out.push(' ');
            }
        }
        if style == Style::Pretty {
            out.push('\n');
            out.push_str(&"  ".repeat(depth + 1));
        }
    };
    let close = |out: &mut String, empty: bool, bracket: char| {
        if style == Style::Pretty && !empty {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
        out.push(bracket);
    };
    match v {
        Value::String(s) => write_string(rng, s, style, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                gap(out, i);
                write_value(rng, item, style, depth + 1, out);
            }
            close(out, items.is_empty(), ']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                gap(out, i);
                write_string(rng, k, style, out);
                out.push(':');
                if matches!(style, Style::Spaced | Style::Pretty) {
                    out.push(' ');
                }
                write_value(rng, item, style, depth + 1, out);
            }
            close(out, map.is_empty(), '}');
        }
        other => out.push_str(&other.to_string()),
    }
}

pub fn write_string(rng: &mut Rng, s: &str, style: Style, out: &mut String) {
    if style != Style::Escaped {
        out.push_str(&Value::String(s.to_string()).to_string());
        return;
    }
    out.push('"');
    for c in s.chars() {
        let plain = Value::String(c.to_string()).to_string();
        if plain.len() > 3 || !rng.chance(40) {
            // Already an escape (quote, backslash, control) or left as it is.
            out.push_str(&plain[1..plain.len() - 1]);
            continue;
        }
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{:04x}", u));
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/// Text that stresses decoders: multi-byte UTF-8, emoji, escapes, empty strings.
const TEXTS: &[&str] = &[
    "Hello",
    " world",
    "",
    "Héllo",
    " wörld",
    "日本語のテキスト",
    "🦀 crab",
    "👩‍💻",
    "\"quoted\"",
    "back\\slash",
    "line\nbreak",
    "tab\there",
    "\u{7f}\u{1}",
    "data: [DONE]",
    "\"content\":\"fake\"",
    "{\"usage\":{\"prompt_tokens\":1}}",
    "event: error",
    "\r\n\r\n",
];

pub fn text(rng: &mut Rng) -> String {
    let n = 1 + rng.below(3);
    (0..n).map(|_| rng.pick(TEXTS)).collect()
}

/// A token count as a provider reports it.
pub fn tokens(rng: &mut Rng) -> u64 {
    if HUGE_NUMBERS && rng.chance(25) {
        rng.pick(&[1u64 << 53, 1 << 62, 1 << 63, u64::MAX, u64::MAX - 1])
    } else {
        rng.pick(&[0u64, 1, 2, 9, 100, 4096, 123_456, 1_000_000])
    }
}

/// `s` cut into 1–4 fragments at random char boundaries, as a provider streams a string (or
/// the JSON text of tool arguments, so fragments end inside escapes too).
pub fn fragments(rng: &mut Rng, s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut cuts: Vec<usize> = (0..rng.below(4))
        .map(|_| rng.below(chars.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        out.push(chars[at..c].iter().collect());
        at = c;
    }
    out.push(chars[at..].iter().collect());
    out
}

/// SSE framing for one event.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub eol: &'static str,
    pub style: Style,
    /// Write an `event:` line (Anthropic does; OpenAI does not).
    pub named: bool,
}

pub fn frame(rng: &mut Rng, named: bool) -> Frame {
    Frame {
        eol: rng.pick(&["\n", "\n", "\r\n", "\r"]),
        style: style(rng),
        named,
    }
}

pub fn push_event(rng: &mut Rng, out: &mut String, f: Frame, name: Option<&str>, data: &Value) {
    if rng.chance(8) {
        out.push_str(&format!(": keep-alive{}{}", f.eol, f.eol));
    }
    if let (true, Some(name)) = (f.named, name) {
        out.push_str(&format!("event: {name}{}", f.eol));
    }
    if rng.chance(5) {
        out.push_str(&format!("id: {}{}", rng.below(100), f.eol));
    }
    let text = write_json(rng, data, f.style);
    for line in text.split('\n') {
        let sep = if rng.chance(20) { "data:" } else { "data: " };
        out.push_str(&format!("{sep}{line}{}", f.eol));
    }
    out.push_str(f.eol);
}

pub fn push_raw(out: &mut String, f: Frame, data: &str) {
    out.push_str(&format!("data: {data}{}{}", f.eol, f.eol));
}

/// Ends a transcript the way real streams end: cleanly, cut mid-event, or with no final blank
/// line.
pub fn ending(rng: &mut Rng, mut s: String) -> String {
    match rng.below(10) {
        0 => {
            let cut = rng.below(s.len() + 1);
            let mut cut = cut;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s
        }
        1 => {
            let trimmed = s.trim_end_matches(['\r', '\n']).len();
            s.truncate(trimmed);
            s
        }
        _ => s,
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

/// A random JSON value. `huge` allows numbers a u64/i64 cannot hold or sums overflow.
pub fn any_value(rng: &mut Rng, depth: usize, huge: bool) -> Value {
    let leaf = depth > 2 || rng.chance(60);
    match rng.below(if leaf { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => {
            let small = [
                json!(0),
                json!(-1),
                json!(1.5),
                json!(-0.0),
                json!(1e308),
                json!(42),
                json!(4294967296u64),
            ];
            let big = [json!(u64::MAX), json!(i64::MIN), json!(1u64 << 63)];
            if huge && rng.chance(40) {
                rng.pick(&big)
            } else {
                rng.pick(&small)
            }
        }
        3 | 4 => json!(text(rng)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| any_value(rng, depth + 1, huge))
                .collect(),
        ),
        _ => {
            let keys = [
                "type",
                "text",
                "content",
                "role",
                "input",
                "name",
                "id",
                "usage",
                "index",
                "arguments",
                "x",
            ];
            Value::Object(
                (0..rng.below(4))
                    .map(|_| (rng.pick(&keys).to_string(), any_value(rng, depth + 1, huge)))
                    .collect(),
            )
        }
    }
}

/// Changes one random node of `v`: a new value, a removed key, a duplicated array item.
pub fn mutate_value(rng: &mut Rng, v: &mut Value, huge: bool) {
    let mut node = v;
    loop {
        let children = match node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if children == 0 || rng.chance(30) {
            break;
        }
        let i = rng.below(children);
        if rng.chance(15) {
            match node {
                Value::Array(a) => {
                    let item = a[i].clone();
                    a.insert(i, item);
                }
                Value::Object(o) => {
                    let k = o.keys().nth(i).cloned().unwrap_or_default();
                    o.remove(&k);
                }
                _ => {}
            }
            return;
        }
        node = match node {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).unwrap(),
            _ => unreachable!(),
        };
    }
    *node = any_value(rng, 0, huge);
}

/// Byte-level damage: flips, inserts, deletions, duplicated and swapped ranges.
pub fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(6) {
            0 if at < len => bytes[at] ^= 1 << rng.below(8),
            1 => {
                let ins: &[u8] = rng.pick(&[
                    b"\n" as &[u8],
                    b"\r",
                    b"\"",
                    b"\\",
                    b"\\u",
                    b"\xF0\x9F",
                    b"\xFF",
                    b"{",
                    b"}",
                    b"[",
                    b",",
                    b"0",
                    b"data: ",
                    b"\n\n",
                ]);
                bytes.splice(at..at, ins.iter().copied());
            }
            2 if at < len => {
                let end = (at + 1 + rng.below(16)).min(len);
                bytes.drain(at..end);
            }
            3 if at < len => {
                let end = (at + 1 + rng.below(64)).min(len);
                let copy = bytes[at..end].to_vec();
                let to = rng.below(len + 1);
                bytes.splice(to..to, copy);
            }
            4 => bytes.truncate(at),
            _ => {
                let n = rng.below(8);
                let noise: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                bytes.splice(at..at, noise);
            }
        }
    }
}
