//! An incremental parser of `text/event-stream` (Server-Sent Events) bodies.
//!
//! It follows the WHATWG "event stream interpretation" rules: lines end with `\r\n`, `\n` or
//! `\r` (also split across chunks); a line starting with `:` is a comment; `field: value`
//! (one space after the colon is dropped; a line without a colon is a field with an empty
//! value); `data` lines are joined with `\n`; `event` names the event; `id` sets the last
//! event id (ignored when it holds a NUL); `retry` and other fields are ignored; a blank line
//! dispatches the event, and an event without data is not dispatched; a UTF-8 BOM at the start
//! is skipped. Two departures, both lenient: an event whose data is only whitespace is skipped
//! (a keep-alive), and at the end of the stream a pending event with data is dispatched even
//! without the blank line after it.
//!
//! Memory is bounded: the lines of one event (comments and field names included, line ends
//! excluded) may hold at most `max` bytes; past that the parser fails with the caller's error.
//! It works on bytes and never panics: bytes that are not UTF-8 reach the caller as they are.

/// The UTF-8 byte order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One dispatched event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SseEvent<'a> {
    /// The `event` field, empty when none was sent (the spec's default type is `message`).
    pub(crate) event: &'a [u8],
    /// The `data` lines joined with `\n`.
    pub(crate) data: &'a [u8],
    /// The last event id seen in the stream so far (empty when none).
    pub(crate) id: &'a [u8],
}

/// The parser's state between chunks.
pub(crate) struct SseParser {
    /// The current line, when it did not end in the chunk that brought it.
    line: Vec<u8>,
    /// The data of the event being read, each line followed by `\n`.
    data: Vec<u8>,
    /// The `event` field of the event being read.
    event: Vec<u8>,
    /// The last event id.
    id: Vec<u8>,
    /// Bytes of the complete lines of the event being read.
    event_bytes: usize,
    /// The last chunk ended with `\r`: a `\n` at the start of the next one belongs to it.
    after_cr: bool,
    /// How many bytes of a BOM were matched at the start of the stream; `None` once past it.
    bom: Option<usize>,
    max: usize,
}

impl SseParser {
    /// A parser allowing `max` bytes per event.
    pub(crate) fn new(max: usize) -> Self {
        SseParser {
            line: Vec::new(),
            data: Vec::new(),
            event: Vec::new(),
            id: Vec::new(),
            event_bytes: 0,
            after_cr: false,
            bom: Some(0),
            max,
        }
    }

    /// Feeds the next chunk of the body, calling `on_event` for each event it completes;
    /// stops at the first error, or when `on_event` returns `Ok(true)` (the rest of the
    /// chunk is not read).
    pub(crate) fn feed<E>(
        &mut self,
        mut chunk: &[u8],
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<bool, E>,
        too_large: &impl Fn() -> E,
    ) -> Result<bool, E> {
        if let Some(matched) = self.bom {
            chunk = self.skip_bom(matched, chunk);
        }
        if chunk.is_empty() {
            return Ok(false);
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(at) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let (head, rest) = chunk.split_at(at);
            let ended_by_cr = rest[0] == b'\r';
            chunk = &rest[1..];
            if ended_by_cr {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let done = if self.line.is_empty() {
                self.complete_line(head, on_event, too_large)?
            } else {
                self.check_size(head.len(), too_large)?;
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let done = self.complete_line(&line, on_event, too_large);
                line.clear();
                self.line = line;
                done?
            };
            if done {
                return Ok(true);
            }
        }
        self.check_size(chunk.len(), too_large)?;
        self.line.extend_from_slice(chunk);
        Ok(false)
    }

    /// The end of the stream: an unterminated last line is read, then a pending event with
    /// data is dispatched.
    pub(crate) fn finish<E>(
        &mut self,
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<bool, E>,
        too_large: &impl Fn() -> E,
    ) -> Result<bool, E> {
        if let Some(matched) = self.bom.take() {
            // The stream was a prefix of the BOM: those bytes are content.
            self.line.extend_from_slice(&BOM[..matched]);
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            if self.complete_line(&line, on_event, too_large)? {
                return Ok(true);
            }
        }
        self.dispatch(on_event)
    }

    /// Skips the part of a BOM at the start of the stream that `chunk` holds.
    fn skip_bom<'c>(&mut self, mut matched: usize, mut chunk: &'c [u8]) -> &'c [u8] {
        while let Some(&byte) = chunk.first() {
            if byte != BOM[matched] {
                // Not a BOM: the bytes matched so far are content (never a line end).
                self.line.extend_from_slice(&BOM[..matched]);
                self.bom = None;
                return chunk;
            }
            chunk = &chunk[1..];
            matched += 1;
            if matched == BOM.len() {
                self.bom = None;
                return chunk;
            }
        }
        self.bom = Some(matched);
        chunk
    }

    /// Fails when `more` bytes would take the event past the limit.
    fn check_size<E>(&self, more: usize, too_large: &impl Fn() -> E) -> Result<(), E> {
        let total = self
            .event_bytes
            .saturating_add(self.line.len())
            .saturating_add(more);
        if total > self.max {
            return Err(too_large());
        }
        Ok(())
    }

    /// One complete line (without its line end).
    fn complete_line<E>(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<bool, E>,
        too_large: &impl Fn() -> E,
    ) -> Result<bool, E> {
        if line.is_empty() {
            return self.dispatch(on_event);
        }
        self.event_bytes = self.event_bytes.saturating_add(line.len());
        if self.event_bytes > self.max {
            return Err(too_large());
        }
        if line[0] == b':' {
            return Ok(false); // a comment
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.extend_from_slice(value);
            }
            _ => {} // `retry` and unknown fields
        }
        Ok(false)
    }

    /// The blank line: dispatches the event read so far, if it has data.
    fn dispatch<E>(
        &mut self,
        on_event: &mut impl FnMut(SseEvent<'_>) -> Result<bool, E>,
    ) -> Result<bool, E> {
        self.event_bytes = 0;
        let data = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
        let result = if self.data.is_empty() || data.iter().all(u8::is_ascii_whitespace) {
            Ok(false)
        } else {
            on_event(SseEvent {
                event: &self.event,
                data,
                id: &self.id,
            })
        };
        self.data.clear();
        self.event.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// (event, data, id) of each event, as strings.
    type Events = Vec<(String, String, String)>;

    fn parse(max: usize, chunks: &[&[u8]]) -> Result<Events, &'static str> {
        let mut out = Vec::new();
        let mut parser = SseParser::new(max);
        let mut on_event = |e: SseEvent<'_>| {
            out.push((
                String::from_utf8_lossy(e.event).into_owned(),
                String::from_utf8_lossy(e.data).into_owned(),
                String::from_utf8_lossy(e.id).into_owned(),
            ));
            Ok(false)
        };
        for chunk in chunks {
            parser.feed(chunk, &mut on_event, &|| "too large")?;
        }
        parser.finish(&mut on_event, &|| "too large")?;
        Ok(out)
    }

    fn event(event: &str, data: &str, id: &str) -> (String, String, String) {
        (event.to_owned(), data.to_owned(), id.to_owned())
    }

    #[test]
    fn data_lines_join_with_newlines_and_blank_lines_dispatch() {
        let events = parse(
            100,
            &[b"data: a\ndata:b\ndata\ndata:  c\n\ndata: second\n\n"],
        )
        .unwrap();
        assert_eq!(
            events,
            [event("", "a\nb\n\n c", ""), event("", "second", "")]
        );
    }

    #[test]
    fn every_line_ending_and_endings_split_across_chunks() {
        let want = [event("", "1", ""), event("", "2", ""), event("", "3", "")];
        assert_eq!(
            parse(100, &[b"data: 1\r\n\r\ndata: 2\r\rdata: 3\n\n"]).unwrap(),
            want
        );
        // `\r` at the end of a chunk and its `\n` at the start of the next: one line end.
        assert_eq!(
            parse(
                100,
                &[
                    b"data: 1\r",
                    b"\n\r",
                    b"\ndata: 2\r",
                    b"\r",
                    b"data: 3\n",
                    b"\n"
                ]
            )
            .unwrap(),
            want
        );
        // A lone `\r` at a chunk's end, then another line: not merged with it.
        assert_eq!(
            parse(100, &[b"data: 1\r", b"data: x\r\r"]).unwrap(),
            [event("", "1\nx", "")]
        );
    }

    #[test]
    fn comments_event_id_and_unknown_fields() {
        let events = parse(
            100,
            &[
                b": keep-alive\n\nevent: update\nid: 7\nretry: 100\nfoo: bar\n: note\ndata: {}\n\n\
                id: 8\0\ndata: next\n\n",
            ],
        )
        .unwrap();
        assert_eq!(events, [event("update", "{}", "7"), event("", "next", "7")]);
    }

    #[test]
    fn events_without_data_or_with_blank_data_are_skipped() {
        let events = parse(
            100,
            &[b"event: x\n\ndata:\n\ndata:  \ndata:\n\ndata: y\n\n"],
        )
        .unwrap();
        assert_eq!(events, [event("", "y", "")]);
    }

    #[test]
    fn the_last_event_needs_no_blank_line() {
        assert_eq!(parse(100, &[b"data: a\n"]).unwrap(), [event("", "a", "")]);
        assert_eq!(parse(100, &[b"data: a"]).unwrap(), [event("", "a", "")]);
        assert_eq!(parse(100, &[b"data: a\r"]).unwrap(), [event("", "a", "")]);
    }

    #[test]
    fn a_bom_at_the_start_is_skipped_also_when_split() {
        let want = [event("", "a", "")];
        assert_eq!(parse(100, &[b"\xEF\xBB\xBFdata: a\n\n"]).unwrap(), want);
        assert_eq!(
            parse(100, &[b"\xEF", b"", b"\xBB", b"\xBFdata: a\n\n"]).unwrap(),
            want
        );
        // Only at the start, and a partial BOM is content (here: a field named so).
        assert_eq!(
            parse(100, &[b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"]).unwrap(),
            want
        );
        assert_eq!(parse(100, &[b"\xEF\xBBdata: a\n\n"]).unwrap(), []);
        assert_eq!(parse(100, &[b"\xEF\xBB"]).unwrap(), []);
    }

    #[test]
    fn the_event_limit_counts_every_line_of_the_event() {
        // "data: 1234" is 10 bytes.
        assert_eq!(parse(10, &[b"data: 1234\n\n"]).unwrap().len(), 1);
        assert_eq!(parse(10, &[b"data: 1234\r\n\r\n"]).unwrap().len(), 1);
        assert_eq!(parse(10, &[b"data: 12345\n\n"]), Err("too large"));
        assert_eq!(parse(10, &[b"data: 12", b"345"]), Err("too large"));
        assert_eq!(parse(10, &[b"data: 1\ndata: 2\n\n"]), Err("too large"));
        assert_eq!(
            parse(10, &[b":123456789\n", b"data: 1\n\n"]),
            Err("too large")
        );
        // A blank line starts the count again, with or without data.
        assert_eq!(
            parse(10, &[b":123456789\n\ndata: 1234\n\ndata: 5678\n\n"])
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn stopping_leaves_the_rest_unread() {
        let mut parser = SseParser::new(100);
        let mut seen = 0;
        let done = parser
            .feed(
                b"data: 1\n\ndata: 2\n\n",
                &mut |_| {
                    seen += 1;
                    Ok::<_, ()>(true)
                },
                &|| (),
            )
            .unwrap();
        assert!(done);
        assert_eq!(seen, 1);
    }

    /// What a simple, whole-input reading of the same bytes gives: the reference the
    /// incremental parser must agree with for every split.
    fn whole(input: &[u8], max: usize) -> Result<Events, &'static str> {
        parse(max, &[input])
    }

    fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data: ".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"event: e".to_vec()),
            Just(b"id: 1".to_vec()),
            Just(b": c".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(BOM.to_vec()),
            Just(b"{\"type\":\"RUN_STARTED\"}".to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any bytes, split anywhere: no panic, and the same events (or the same error) as
        /// the input in one piece.
        #[test]
        fn any_split_of_any_bytes_gives_the_same_events(
            input in sse_bytes(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            max in 1usize..64,
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(input.len() + 1)).collect();
            at.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for cut in at {
                chunks.push(&input[from..cut]);
                from = cut;
            }
            chunks.push(&input[from..]);
            prop_assert_eq!(parse(max, &chunks), whole(&input, max));
        }

        /// Random bytes one at a time: no panic whatever they are.
        #[test]
        fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..512)) {
            let chunks: Vec<&[u8]> = input.chunks(1).collect();
            let _ = parse(64, &chunks);
        }
    }
}
