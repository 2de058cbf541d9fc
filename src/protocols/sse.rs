//! Incremental WHATWG Server-Sent-Events decoder (protocol.md §8): turns upstream network chunks into
//! events with exact raw byte spans, independent of where the chunk boundaries fall.

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Value of the last `event:` field, None if the event had none (or an empty one, which the
    /// spec treats as the default type).
    pub event: Option<String>,
    /// The data buffer: `data` field values joined with '\n' (the one trailing LF stripped).
    pub data: String,
    /// Absolute byte offset (from the start of the stream, counting the BOM if any) where this event's
    /// segment starts: right after the previous dispatching blank line (or stream start).
    pub start: u64,
    /// Absolute byte offset just past the blank line that dispatched this event.
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseError {
    /// A pending line or event grew past the configured limit (protocol R8.7).
    TooLarge { limit: usize },
}

impl std::fmt::Display for SseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SseError::TooLarge { limit } => write!(f, "SSE event exceeds {limit} bytes"),
        }
    }
}

impl std::error::Error for SseError {}

pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";
/// A line buffer that once held a huge line is shrunk back so one big tool-call argument does not
/// pin megabytes for the rest of a long stream.
const SHRINK_ABOVE: usize = 64 * 1024;

/// Decoder state. Boundary choice for CRLF: a dispatching blank line ends after its LF when that LF
/// is in the same chunk; if the CR ends a chunk the event is dispatched at once (no added latency)
/// with `end` just after the CR, and the LF then becomes the first byte of the next segment. Spans
/// therefore always tile the stream.
#[derive(Debug)]
pub struct SseDecoder {
    limit: usize,
    /// Bytes of the current, not yet terminated line.
    pending: Vec<u8>,
    /// `pending[..scan]` is known to hold no CR/LF, so a long line is never rescanned.
    scan: usize,
    /// The previous chunk ended in CR; a leading LF in the next chunk belongs to that terminator.
    skip_lf: bool,
    /// Nothing has completed a line yet, so the pending line may still start with a BOM.
    first_line: bool,
    data: String,
    event: Option<String>,
    offset: u64,
    boundary: u64,
    /// Where bytes of an unfinished event start: `boundary`, or one past it when the LF of a
    /// dispatching CRLF arrived in the next chunk (that LF ends the old event, opens no new one).
    open_from: u64,
    /// Offset of that LF when the last chunk began with one.
    joined_lf: Option<u64>,
    error: Option<SseError>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }

    pub fn with_limit(max_event_bytes: usize) -> Self {
        SseDecoder {
            limit: max_event_bytes,
            pending: Vec::new(),
            scan: 0,
            skip_lf: false,
            first_line: true,
            data: String::new(),
            event: None,
            offset: 0,
            boundary: 0,
            open_from: 0,
            joined_lf: None,
            error: None,
        }
    }

    /// Feed the next network chunk; returns the events dispatched by it, in order.
    /// After an Err, the decoder is poisoned and returns the same Err for further feeds; events
    /// completed earlier in the failing chunk are dropped with it, since the relay aborts anyway.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        self.joined_lf = None;
        let mut buf = std::mem::take(&mut self.pending);
        let base = self.offset.saturating_sub(buf.len() as u64);
        buf.extend_from_slice(chunk);
        self.offset += chunk.len() as u64;

        // `pos` is where the current line starts in `buf`.
        let mut pos = 0;
        if self.skip_lf && !buf.is_empty() {
            // skip_lf is only set when a CR was the last buffered byte, so `buf` starts with this chunk.
            self.skip_lf = false;
            if buf.first() == Some(&b'\n') {
                pos = 1;
                if self.open_from == base {
                    self.open_from = base + 1;
                    self.joined_lf = Some(base);
                }
            }
        }
        let mut scan = self.scan.max(pos);
        let mut events = Vec::new();
        let mut result = Ok(());
        while let Some(rel) = buf
            .get(scan..)
            .unwrap_or_default()
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let term = scan + rel;
            let mut next = term + 1;
            if buf.get(term) == Some(&b'\r') {
                match buf.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line = buf.get(pos..term).unwrap_or_default();
            // Counting the whole raw line here makes the limit independent of chunking: a split
            // feed would have held the same bytes as a partial line.
            if let Err(err) = self.check_limit(line.len()) {
                result = Err(err);
                break;
            }
            if let Some(ev) = self.process_line(line, base + next as u64) {
                events.push(ev);
            }
            pos = next;
            scan = next;
        }

        buf.drain(..pos.min(buf.len()));
        if buf.capacity() > SHRINK_ABOVE && buf.len() < SHRINK_ABOVE / 2 {
            buf.shrink_to(SHRINK_ABOVE / 2);
        }
        self.scan = buf.len();
        self.pending = buf;
        if let Err(err) = result.and_then(|()| self.check_limit(self.pending.len())) {
            self.error = Some(err.clone());
            return Err(err);
        }
        Ok(events)
    }

    /// End of stream: per spec an undispatched event is discarded, but for accounting (R8.10)
    /// return the pending event parsed leniently (the pending partial line counts as a complete line)
    /// if it has any data; None otherwise (also when poisoned). Call once.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.error.is_some() {
            return None;
        }
        let raw = std::mem::take(&mut self.pending);
        self.scan = 0;
        self.skip_lf = false;
        if !raw.is_empty() {
            if let Some(ev) = self.process_line(&raw, self.offset) {
                return Some(ev);
            }
        }
        self.dispatch(self.offset)
    }

    /// Total bytes fed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset just past the last segment boundary (the last dispatching blank line, whether or not
    /// that dispatch produced an event); 0 at start. Bytes in [boundary(), offset()) belong to an
    /// event still in progress.
    pub fn boundary(&self) -> u64 {
        self.boundary
    }

    /// Whether bytes of an event still in progress have been fed: what a pass-through relay
    /// must close with a blank line before it appends an event of its own. Unlike
    /// `boundary() < offset()` it does not depend on where the chunks were cut.
    pub fn mid_event(&self) -> bool {
        self.open_from < self.offset
    }

    /// The offset of the LF that opened the last chunk and finished the CRLF blank line the
    /// previous chunk ended with: that byte belongs to the event already dispatched (its `end`
    /// stops at the CR), so a relay that drops that event drops the LF too.
    pub fn joined_lf(&self) -> Option<u64> {
        self.joined_lf
    }

    fn check_limit(&self, line_len: usize) -> Result<(), SseError> {
        let event_len = self.event.as_ref().map_or(0, String::len);
        if self.data.len() + event_len + line_len > self.limit {
            Err(SseError::TooLarge { limit: self.limit })
        } else {
            Ok(())
        }
    }

    /// Interprets one complete line; `end` is the absolute offset just past its terminator.
    fn process_line(&mut self, raw: &[u8], end: u64) -> Option<SseEvent> {
        let line = if std::mem::take(&mut self.first_line) {
            raw.strip_prefix(BOM).unwrap_or(raw)
        } else {
            raw
        };
        if line.is_empty() {
            return self.dispatch(end);
        }
        if line.first() == Some(&b':') {
            return None;
        }
        // ':' is ASCII, so splitting the bytes there and decoding the value equals decoding the
        // whole line first.
        let mut parts = line.splitn(2, |&b| b == b':');
        let name = parts.next().unwrap_or_default();
        let value = parts.next().unwrap_or_default();
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match name {
            b"data" => {
                self.data.push_str(&String::from_utf8_lossy(value));
                self.data.push('\n');
            }
            b"event" => {
                self.event =
                    (!value.is_empty()).then(|| String::from_utf8_lossy(value).into_owned());
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self, end: u64) -> Option<SseEvent> {
        let start = std::mem::replace(&mut self.boundary, end);
        self.open_from = end;
        let event = self.event.take();
        if self.data.is_empty() {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        Some(SseEvent {
            event,
            data,
            start,
            end,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    type Expected<'a> = &'a [(Option<&'a str>, &'a str)];

    fn run(chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseEvent>) {
        let mut d = SseDecoder::new();
        let mut events = Vec::new();
        for c in chunks {
            events.extend(d.feed(c).unwrap());
        }
        (events, d.finish())
    }

    fn pairs(events: &[SseEvent]) -> Vec<(Option<&str>, &str)> {
        events
            .iter()
            .map(|e| (e.event.as_deref(), e.data.as_str()))
            .collect()
    }

    /// The one documented chunking dependence: a boundary after a CRLF whose LF was cut into the
    /// next chunk sits between the CR and the LF.
    fn shifted(b: u64, bytes: &[u8], cuts: &[usize]) -> u64 {
        let i = b as usize;
        let cut_crlf = i >= 2 && &bytes[i - 2..i] == b"\r\n" && cuts.contains(&(i - 1));
        b - u64::from(cut_crlf)
    }

    /// Feeds `bytes` split at every single point, and byte by byte; each must match the unsplit feed.
    fn assert_split_invariant(bytes: &[u8]) {
        let (want, want_fin) = run(&[bytes]);
        let mut plans: Vec<Vec<usize>> = (1..bytes.len()).map(|i| vec![i]).collect();
        plans.push((1..bytes.len()).collect());
        for cuts in plans {
            let mut chunks = Vec::new();
            let mut prev = 0;
            for &c in cuts.iter().chain([bytes.len()].iter()) {
                chunks.push(&bytes[prev..c]);
                prev = c;
            }
            let (got, fin) = run(&chunks);
            let shift = |b| shifted(b, bytes, &cuts);
            let want_events: Vec<_> = want
                .iter()
                .map(|e| SseEvent {
                    start: shift(e.start),
                    end: shift(e.end),
                    ..e.clone()
                })
                .collect();
            assert_eq!(got, want_events, "cuts {cuts:?}");
            // finish() ends at EOF, not at a blank line, so only its start can move.
            let want_fin = want_fin.clone().map(|e| SseEvent {
                start: shift(e.start),
                ..e
            });
            assert_eq!(fin, want_fin, "cuts {cuts:?}");
        }
    }

    /// protocol.md §8.4: (name, upstream chunks, expected events). V10, V12, V17 and V18 have
    /// extra tests below.
    const VECTORS: &[(&str, &[&[u8]], Expected)] = &[
        ("V1", &[b"data: {\"a\":", b"1}\n\n"], &[(None, r#"{"a":1}"#)]),
        ("V2", &[b"data: \"caf\xC3", b"\xA9\"\n\n"], &[(None, "\"caf\u{e9}\"")]),
        ("V3", &[b"data: x\r", b"\n\r\n"], &[(None, "x")]),
        ("V4", &[b"data: x\r\rdata: y\r\r"], &[(None, "x"), (None, "y")]),
        ("V5", &[b": keep-alive\n\ndata: x\n\n"], &[(None, "x")]),
        ("V6", &[b"data: line1\ndata: line2\n\n"], &[(None, "line1\nline2")]),
        (
            "V7",
            &[b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n"],
            &[(Some("message_start"), r#"{"type":"message_start"}"#)],
        ),
        ("V8a", &[b"data:x\n\n"], &[(None, "x")]),
        ("V8b", &[b"data:  x\n\n"], &[(None, " x")]),
        ("V9", &[b"\n\n\n\n"], &[]),
        ("V10", &[b"data: [DONE]"], &[]),
        ("V11", &[b"\xEF\xBB\xBFdata: x\n\n"], &[(None, "x")]),
        ("V11 split BOM", &[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"], &[(None, "x")]),
        ("V12", &[b"data\n\n"], &[(None, "")]),
        (
            "V13",
            &[b"event: ping\ndata: {\"type\": \"ping\"}\n\n"],
            &[(Some("ping"), r#"{"type": "ping"}"#)],
        ),
        ("V14", &[b"Data: x\n\n"], &[]),
        (
            "V15",
            &[b"data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\ndata: [DONE]\n\n"],
            &[
                (None, r#"{"error":{"message":"boom","type":"server_error","param":null,"code":null}}"#),
                (None, "[DONE]"),
            ],
        ),
        (
            "V16",
            &[b"data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}\n\n"],
            &[(None, r#"{"id":"x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#)],
        ),
        ("V18", &[b"data: a\n\ndata: b\n\n"], &[(None, "a"), (None, "b")]),
    ];

    #[test]
    fn protocol_vectors_under_every_split() {
        for &(name, chunks, expected) in VECTORS {
            let (events, _) = run(chunks);
            assert_eq!(pairs(&events), expected, "{name}");
            assert_split_invariant(&chunks.concat());
        }
    }

    #[test]
    fn finish_returns_unterminated_event_v10_v12_v18() {
        let mut d = SseDecoder::new();
        assert!(d.feed(b"data: [DONE]").unwrap().is_empty());
        let ev = d.finish().unwrap();
        assert_eq!(
            (ev.event, ev.data.as_str(), ev.start, ev.end),
            (None, "[DONE]", 0, 12)
        );
        assert_eq!(d.finish(), None);
        // A terminated last line without the blank line is still pending.
        let (events, fin) = run(&[b"data: a\n\nevent: e\ndata: [DONE]\n"]);
        assert_eq!(events.len(), 1);
        let fin = fin.unwrap();
        assert_eq!(pairs(std::slice::from_ref(&fin)), [(Some("e"), "[DONE]")]);
        assert_eq!((fin.start, fin.end), (9, 31));
        assert_split_invariant(b"data: a\r\n\r\ndata: [DONE]\r\n");
        // Comments, ids or an event type alone are no data, but V12's bare `data` is.
        assert_eq!(run(&[b": ping\nevent: x\nid: 1"]).1, None);
        assert_eq!(run(&[b"data"]).1.unwrap().data, "");
        // What a line-skipping proxy makes of V18: one undispatched event, never two.
        let (events, fin) = run(&[b"data: a\ndata: b\n"]);
        assert_eq!((events.len(), fin.unwrap().data.as_str()), (0, "a\nb"));
    }

    #[test]
    fn v17_three_megabyte_line_in_1k_chunks() {
        let mut bytes = b"data: ".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
        bytes.extend_from_slice(b"\n\n");
        let mut d = SseDecoder::new();
        let mut events = Vec::new();
        let started = std::time::Instant::now();
        for chunk in bytes.chunks(1024) {
            events.extend(d.feed(chunk).unwrap());
        }
        // Linear is ~50 ms even unoptimised; rescanning the line per chunk took ~40 s.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), 3 << 20);
        assert!(events[0].data.bytes().all(|b| b == b'x'));
        assert_eq!((events[0].start, events[0].end), (0, bytes.len() as u64));
        assert!(d.pending.capacity() <= SHRINK_ABOVE);
    }

    const OPENAI_STREAM: &[u8] = b"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\r\n\r\n\
: OPENROUTER PROCESSING\n\n\
data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\xC3\xA9 \xE2\x98\x95\"}}]}\n\n\
id: 7\r\nretry: 100\r\ndata: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n\
data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\r\r\
data: [DONE]\r\n\r\n";

    #[test]
    fn openai_stream_with_mixed_terminators() {
        let (events, fin) = run(&[OPENAI_STREAM]);
        assert_eq!(events.len(), 5);
        assert!(events[1].data.contains("caf\u{e9} \u{2615}"));
        assert!(events[3].data.contains("usage"));
        assert_eq!(events[4].data, "[DONE]");
        assert!(events.iter().all(|e| e.event.is_none()));
        assert_eq!(fin, None);
        assert_split_invariant(OPENAI_STREAM);
    }

    #[test]
    fn spans_tile_the_stream_and_hold_raw_text() {
        let bytes: &[u8] =
            b"\xEF\xBB\xBFevent: a\r\ndata: 1\r\n\r\n: c\ndata: 2\n\ndata: 3\r\rdata: 4\r\n\n";
        let (events, _) = run(&[bytes]);
        assert_eq!(events[0].start, 0);
        assert_eq!(events.last().unwrap().end, bytes.len() as u64);
        assert!(events.windows(2).all(|w| w[0].end == w[1].start));
        let raw: Vec<&[u8]> = events
            .iter()
            .map(|e| &bytes[e.start as usize..e.end as usize])
            .collect();
        let want: [&[u8]; 4] = [
            b"\xEF\xBB\xBFevent: a\r\ndata: 1\r\n\r\n",
            b": c\ndata: 2\n\n",
            b"data: 3\r\r",
            b"data: 4\r\n\n",
        ];
        assert_eq!(raw, want);
        assert_split_invariant(bytes);
    }

    #[test]
    fn mid_event_ignores_the_lf_of_a_cut_crlf() {
        // Found by tests/fuzz: "\r" | "\n" left boundary() < offset(), which a pass-through
        // relay read as a half-sent event the unsplit feed did not have.
        let mut d = SseDecoder::new();
        assert_eq!(d.feed(b"data: a\r\n\r").unwrap().len(), 1);
        assert!(!d.mid_event());
        assert!(d.feed(b"\n").unwrap().is_empty());
        assert!(!d.mid_event(), "the LF only finishes the blank line");
        assert!(d.feed(b"\n").unwrap().is_empty());
        assert!(!d.mid_event(), "a blank line is a boundary of its own");
        assert!(d.feed(b"da").unwrap().is_empty());
        assert!(d.mid_event());
        // A CR that ends a field line, not an event: the event stays open across the LF.
        let mut d = SseDecoder::new();
        assert!(d.feed(b"data: a\r").unwrap().is_empty());
        assert!(d.feed(b"\n").unwrap().is_empty());
        assert!(d.mid_event());
    }

    #[test]
    fn boundary_tracks_segments() {
        let mut d = SseDecoder::new();
        assert_eq!((d.boundary(), d.offset()), (0, 0));
        assert_eq!(d.feed(b"data: x\n\ndata: y").unwrap().len(), 1);
        assert_eq!((d.boundary(), d.offset()), (9, 16));
        assert!(d.feed(b"\n").unwrap().is_empty());
        assert_eq!(d.boundary(), 9);
        let ev = d.feed(b"\n: c\n\n").unwrap();
        assert_eq!((ev[0].start, ev[0].end), (9, 18));
        // Comment-only and empty segments (V9) dispatch nothing but are still boundaries.
        assert_eq!((d.boundary(), d.offset()), (23, 23));
        assert!(d.feed(b"\n\n\n\n").unwrap().is_empty());
        assert_eq!((d.boundary(), d.offset(), d.finish()), (27, 27, None));
    }

    #[test]
    fn crlf_cut_after_cr_dispatches_immediately() {
        let mut d = SseDecoder::new();
        let ev = d.feed(b"data: x\r\n\r").unwrap();
        assert_eq!((ev[0].start, ev[0].end, d.boundary()), (0, 10, 10));
        assert!(d.feed(b"\n").unwrap().is_empty());
        assert_eq!((d.boundary(), d.offset()), (10, 11));
        let ev = d.feed(b"data: y\n\n").unwrap();
        assert_eq!((ev[0].data.as_str(), ev[0].start, ev[0].end), ("y", 10, 20));
        // Empty feeds must not lose the pending LF skip.
        let mut d = SseDecoder::new();
        for chunk in [&b"data: x\r"[..], b"", b"\n"] {
            assert!(d.feed(chunk).unwrap().is_empty());
        }
        assert_eq!(d.feed(b"\n").unwrap()[0].data, "x");
    }

    #[test]
    fn field_parsing_details() {
        let (events, _) =
            run(&[b"event: a\nevent\ndata: 1\n\nevent:b\ndata:\ndata\nretry: x\nfoo: y\nid\n\n"]);
        // An empty `event:` resets the type to the default.
        assert_eq!(pairs(&events), [(None, "1"), (Some("b"), "\n")]);
        // Value split at the first colon only; invalid UTF-8 becomes U+FFFD.
        assert_eq!(run(&[b"data: a: b\xFF\n\n"]).0[0].data, "a: b\u{fffd}");
        // A BOM is only stripped at stream start.
        assert_eq!(run(&[b"data: x\n\n\xEF\xBB\xBFdata: y\n\n"]).0.len(), 1);
    }

    #[test]
    fn too_large_poisons_decoder() {
        let too_large = Err(SseError::TooLarge { limit: 16 });
        let mut d = SseDecoder::with_limit(16);
        assert!(d.feed(b"data: 0123456789").unwrap().is_empty());
        assert_eq!(d.feed(b"abcdef"), too_large);
        assert_eq!(d.feed(b"\n\n"), too_large);
        assert_eq!(d.finish(), None);
        // Accumulated data counts, not just one line.
        let mut d = SseDecoder::with_limit(16);
        assert_eq!(d.feed(b"data: 0123456789\ndata: 01234\n\n"), too_large);
        // Dispatch releases the budget, and comments never accumulate.
        let mut d = SseDecoder::with_limit(16);
        for _ in 0..100 {
            assert_eq!(d.feed(b": ping\ndata: 0123456789\n\n").unwrap().len(), 1);
        }
    }

    #[test]
    fn too_large_is_independent_of_chunking() {
        for (bytes, errs) in [
            (&b"data: 0123456789\n\ndata: 0123456789\n\n"[..], false),
            (b"data: 0123456789\n\ndata: 0123456789a\n\n", true),
            (b"data: 0123\ndata: 01234\n\n", false),
            (b"data: 0123\ndata: 012345\n\n", true),
        ] {
            for cut in 0..=bytes.len() {
                let mut d = SseDecoder::with_limit(16);
                let r = d.feed(&bytes[..cut]).and_then(|_| d.feed(&bytes[cut..]));
                assert_eq!(r.is_err(), errs, "{bytes:?} cut {cut}");
            }
        }
    }
}
