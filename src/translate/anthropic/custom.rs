//! OpenAI custom tools (free-text input, e.g. Cursor's `ApplyPatch`) on Claude, which has only
//! JSON-schema tools (protocol.md §6.1 [DECISION]): each becomes a tool taking one string
//! property, `input`, and Claude's `tool_use` comes back as a `custom` call whose `input` is that
//! string. In a stream the string is decoded out of the partial JSON as it arrives, so a long
//! patch streams to the client instead of landing all at once at the end.

use serde_json::{json, Map, Value};

/// The one property of the schema a custom tool is given.
pub const FIELD: &str = "input";

/// The names of the custom tools in a request's `tools`: a `tool_use` of one of them is a
/// custom call.
pub fn tool_names(tools: Option<&Value>) -> Vec<String> {
    tools
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("custom"))
        .filter_map(|t| t.pointer("/custom/name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// The Anthropic tool for `{"type":"custom","custom":{name, description?, format?}}`. A grammar
/// cannot be enforced on Claude, so it goes into the description for the model to follow.
pub fn anthropic_tool(custom: &Map<String, Value>, name: &str) -> Value {
    let mut description = custom
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let grammar = custom
        .get("format")
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("grammar"))
        .and_then(|f| f.get("grammar"));
    if let Some(def) = grammar
        .and_then(|g| g.get("definition"))
        .and_then(Value::as_str)
    {
        let syntax = grammar
            .and_then(|g| g.get("syntax"))
            .and_then(Value::as_str)
            .unwrap_or("lark");
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str(&format!(
            "The `{FIELD}` string must follow this {syntax} grammar:\n{def}"
        ));
    }
    let mut tool = Map::new();
    tool.insert("name".into(), json!(name));
    if !description.is_empty() {
        tool.insert("description".into(), json!(description));
    }
    tool.insert(
        "input_schema".into(),
        json!({"type": "object", "properties": {FIELD: {"type": "string"}}, "required": [FIELD]}),
    );
    Value::Object(tool)
}

/// The custom-call input carried by a finished `tool_use` input object. Anything but a string
/// (a model that ignored the schema) is passed on as its JSON text rather than lost.
pub fn input_of(tool_input: Option<&Value>) -> String {
    match tool_input.and_then(|i| i.get(FIELD)) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => match tool_input {
            Some(Value::Object(o)) if o.is_empty() => String::new(),
            Some(v) => v.to_string(),
            None => String::new(),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Matching `{ "input" : "` (whitespace allowed between tokens); `.0` is how much of the
    /// token sequence has matched.
    Head(usize),
    /// Inside the string value; `.0` holds an escape sequence cut by a fragment boundary.
    Body(String),
    /// The closing quote has been seen.
    Done,
    /// The JSON did not start as expected: wait for the whole object and parse it.
    Buffer,
}

const HEAD: &[u8] = b"{\"input\":\"";

/// Decodes the `input` string out of a tool's `input_json_delta` fragments, returning each
/// decoded piece as soon as it is certain. `finish` reconciles with a full parse, so what was
/// streamed plus what `finish` returns is always exactly the final `input`.
#[derive(Debug, Clone)]
pub struct InputDecoder {
    state: State,
    raw: String,
    sent: String,
    /// A high surrogate waiting for its pair.
    high: Option<u16>,
}

impl Default for InputDecoder {
    fn default() -> Self {
        InputDecoder {
            state: State::Head(0),
            raw: String::new(),
            sent: String::new(),
            high: None,
        }
    }
}

impl InputDecoder {
    /// Feeds one `partial_json` fragment; returns the newly decoded text (maybe empty).
    pub fn feed(&mut self, fragment: &str) -> String {
        self.raw.push_str(fragment);
        let mut out = String::new();
        for c in fragment.chars() {
            match &mut self.state {
                State::Head(n) => {
                    let in_string = *n > 1 && *n < HEAD.len() - 2;
                    if c.is_ascii_whitespace() && !in_string {
                        continue;
                    }
                    if HEAD.get(*n).copied() == Some(c as u32 as u8) && c.is_ascii() {
                        *n += 1;
                        if *n == HEAD.len() {
                            self.state = State::Body(String::new());
                        }
                    } else {
                        self.state = State::Buffer;
                    }
                }
                State::Body(pending) => {
                    if pending.is_empty() {
                        match c {
                            '"' => self.state = State::Done,
                            '\\' => pending.push(c),
                            _ => out.push(c),
                        }
                        continue;
                    }
                    pending.push(c);
                    let seq = std::mem::take(pending);
                    match decode_escape(&seq, &mut self.high) {
                        Escape::Incomplete => *pending = seq,
                        Escape::Char(Some(ch)) => out.push(ch),
                        Escape::Char(None) => {}
                        Escape::Invalid => self.state = State::Buffer,
                    }
                }
                State::Done | State::Buffer => break,
            }
        }
        self.sent.push_str(&out);
        out
    }

    /// At the end of the block: whatever of the final input has not been sent yet.
    pub fn finish(&mut self) -> String {
        let parsed = serde_json::from_str::<Value>(&self.raw).ok();
        let full = match &parsed {
            Some(v) => input_of(Some(v)),
            // Truncated JSON: what was decoded is all there is.
            None => self.sent.clone(),
        };
        let rest = full
            .strip_prefix(self.sent.as_str())
            .unwrap_or_default()
            .to_string();
        self.sent = full;
        self.state = State::Done;
        rest
    }
}

enum Escape {
    Incomplete,
    /// A decoded character, or None for a high surrogate held for its pair.
    Char(Option<char>),
    Invalid,
}

/// Decodes a JSON escape sequence starting with `\`.
fn decode_escape(seq: &str, high: &mut Option<u16>) -> Escape {
    let mut it = seq.chars().skip(1);
    let simple = match it.next() {
        None => return Escape::Incomplete,
        Some('"') => '"',
        Some('\\') => '\\',
        Some('/') => '/',
        Some('b') => '\u{8}',
        Some('f') => '\u{c}',
        Some('n') => '\n',
        Some('r') => '\r',
        Some('t') => '\t',
        Some('u') => {
            let hex: String = it.collect();
            if hex.len() < 4 {
                return Escape::Incomplete;
            }
            let Ok(unit) = u16::from_str_radix(&hex, 16) else {
                return Escape::Invalid;
            };
            return match (high.take(), unit) {
                (None, 0xD800..=0xDBFF) => {
                    *high = Some(unit);
                    Escape::Char(None)
                }
                (Some(h), 0xDC00..=0xDFFF) => {
                    let code =
                        0x10000 + ((u32::from(h) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                    char::from_u32(code).map_or(Escape::Invalid, |c| Escape::Char(Some(c)))
                }
                (None, _) => char::from_u32(u32::from(unit))
                    .map_or(Escape::Invalid, |c| Escape::Char(Some(c))),
                // A lone surrogate: let the final parse decide.
                (Some(_), _) => Escape::Invalid,
            };
        }
        Some(_) => return Escape::Invalid,
    };
    if high.is_some() {
        return Escape::Invalid;
    }
    Escape::Char(Some(simple))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode_split(raw: &str, at: &[usize]) -> (String, String) {
        let mut d = InputDecoder::default();
        let mut streamed = String::new();
        let mut last = 0;
        for &cut in at.iter().chain(std::iter::once(&raw.len())) {
            streamed.push_str(&d.feed(&raw[last..cut]));
            last = cut;
        }
        let rest = d.finish();
        (streamed, rest)
    }

    #[test]
    fn every_split_of_an_escaped_input_decodes_exactly() {
        let input =
            "*** Begin Patch\n*** Update File: a \"b\".rs\n\t-x\\y\n+é😀 \u{1}\n*** End Patch";
        let raw = json!({FIELD: input}).to_string();
        let spaced = raw.replacen("{\"input\":", "{ \"input\" :  ", 1);
        for raw in [raw, spaced] {
            let bounds: Vec<usize> = (1..raw.len())
                .filter(|i| raw.is_char_boundary(*i))
                .collect();
            for &i in &bounds {
                for &j in bounds.iter().filter(|j| **j > i).step_by(7) {
                    let (streamed, rest) = decode_split(&raw, &[i, j]);
                    assert_eq!(format!("{streamed}{rest}"), input, "split at {i},{j}");
                    assert!(rest.is_empty(), "all of it streamed, split at {i},{j}");
                }
            }
        }
    }

    #[test]
    fn surrogate_pairs_split_across_fragments() {
        let raw = r#"{"input":"a\ud83d\ude00b"}"#;
        for i in 1..raw.len() {
            let (streamed, rest) = decode_split(raw, &[i]);
            assert_eq!(streamed + &rest, "a😀b", "split at {i}");
        }
    }

    #[test]
    fn unexpected_shapes_fall_back_to_the_parsed_object() {
        // Another key first: nothing streams until the end, then the value in one piece.
        let (streamed, rest) = decode_split(r#"{"note":1,"input":"p"}"#, &[5]);
        assert_eq!((streamed.as_str(), rest.as_str()), ("", "p"));
        // A model that ignored the schema: its JSON, not nothing.
        let (streamed, rest) = decode_split(r#"{"patch":"p"}"#, &[3]);
        assert_eq!(streamed + &rest, r#"{"patch":"p"}"#);
        // Empty input object (a tool called with no input).
        assert_eq!(decode_split("{}", &[]), (String::new(), String::new()));
        assert_eq!(decode_split("", &[]), (String::new(), String::new()));
        // Truncated: what was decoded stays, nothing is invented.
        let (streamed, rest) = decode_split(r#"{"input":"abc"#, &[4]);
        assert_eq!((streamed.as_str(), rest.as_str()), ("abc", ""));
    }

    #[test]
    fn tools_and_names() {
        let body = json!({"tools": [
            {"type": "function", "function": {"name": "f"}},
            {"type": "custom", "custom": {"name": "ApplyPatch", "description": "Apply a patch",
             "format": {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: x"}}}},
            {"type": "custom", "custom": {"name": "Free"}}
        ]});
        assert_eq!(tool_names(body.get("tools")), ["ApplyPatch", "Free"]);
        assert!(tool_names(None).is_empty());
        let custom = body["tools"][1]["custom"].as_object().unwrap();
        assert_eq!(
            anthropic_tool(custom, "ApplyPatch"),
            json!({"name": "ApplyPatch",
                   "description": "Apply a patch\n\nThe `input` string must follow this lark grammar:\nstart: x",
                   "input_schema": {"type": "object", "properties": {"input": {"type": "string"}},
                                    "required": ["input"]}})
        );
        let free = body["tools"][2]["custom"].as_object().unwrap();
        assert_eq!(anthropic_tool(free, "Free").get("description"), None);
        assert_eq!(input_of(Some(&json!({"input": "p"}))), "p");
        assert_eq!(input_of(Some(&json!({"input": 5}))), "5");
        assert_eq!(input_of(None), "");
    }
}
