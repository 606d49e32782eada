//! One HTTP/1.x request head as the operator's listener reads it: found within [`MAX_HEAD`]
//! bytes ([`HeadScanner`], which refuses a bad request line as soon as it is whole, so garbage
//! is answered at once rather than after the timeout) and parsed ([`parse_head`]) after RFC 9112:
//! request line, header fields, `Host` for HTTP/1.1. Only what the routes need is kept: the
//! method, the path and the `Accept` field.

use super::response::Status;

/// Most bytes of a request head (request line, header fields and the blank line ending them).
/// A head not ended within it is answered 431 (414 when the request line alone is longer).
pub const MAX_HEAD: usize = 8 * 1024;

/// The methods the listener tells apart; every other one is answered 405.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Any other well-formed method token.
    Other,
}

/// What the routes need from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The request target's path, without query or fragment.
    pub path: String,
    /// The `Accept` field values, joined with ", " when it was given more than once.
    pub accept: Option<String>,
}

/// Why a request head is refused; each maps to the status RFC 9110/9112 give it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error("request line longer than {MAX_HEAD} bytes")]
    RequestLineTooLong,
    #[error("request head longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed request line")]
    RequestLine,
    #[error("HTTP version {0} not supported (HTTP/1.x only)")]
    Version(String),
    #[error("malformed header field")]
    HeaderField,
    #[error("HTTP/1.1 request without exactly one Host field")]
    Host,
}

impl BadRequest {
    /// The status answered.
    pub fn status(&self) -> Status {
        match self {
            BadRequest::RequestLineTooLong => Status::UriTooLong,
            BadRequest::HeadTooLarge => Status::HeaderFieldsTooLarge,
            BadRequest::Version(_) => Status::VersionNotSupported,
            BadRequest::RequestLine | BadRequest::HeaderField | BadRequest::Host => {
                Status::BadRequest
            }
        }
    }
}

/// Finds the end of a request head in bytes as they arrive, looking at each byte once however
/// the client splits its writes (so a client sending a byte at a time costs no more than one
/// sending the head whole).
#[derive(Debug, Default)]
pub struct HeadScanner {
    /// Bytes already looked at.
    scanned: usize,
    /// Set once the request line is whole and valid.
    request_line_end: Option<usize>,
}

impl HeadScanner {
    /// Looks at what `buf` (all bytes received so far) adds: `Some(len)` once the head is whole
    /// (its first `len` bytes), `None` while more is needed, an error as soon as the bytes
    /// cannot be a valid head or exceed [`MAX_HEAD`].
    pub fn advance(&mut self, buf: &[u8]) -> Result<Option<usize>, BadRequest> {
        while self.scanned < buf.len() {
            let i = self.scanned;
            let b = buf[i];
            self.scanned += 1;
            match self.request_line_end {
                None => {
                    if b == b'\n' {
                        request_line(&buf[..i])?;
                        self.request_line_end = Some(i + 1);
                    } else if !(is_request_line_byte(b) || b == b'\r') {
                        // Not text: a TLS hello, a binary protocol, noise.
                        return Err(BadRequest::RequestLine);
                    }
                }
                Some(_) => {
                    // A blank line ends the head: "\n\n" or "\n\r\n".
                    if b == b'\n'
                        && (buf[i - 1] == b'\n' || (buf[i - 1] == b'\r' && buf[i - 2] == b'\n'))
                    {
                        return Ok(Some(i + 1));
                    }
                }
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err(match self.request_line_end {
                None => BadRequest::RequestLineTooLong,
                Some(_) => BadRequest::HeadTooLarge,
            });
        }
        Ok(None)
    }
}

/// Bytes a request line may hold: visible ASCII and the spaces between its parts.
fn is_request_line_byte(b: u8) -> bool {
    (b' '..=b'~').contains(&b)
}

/// A `tchar` of RFC 9110 (method names and field names).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The line without its line ending (CRLF, or a lone LF, which RFC 9112 lets a server accept);
/// a CR anywhere else makes it malformed.
fn strip_cr(line: &[u8]) -> Option<&[u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    (!line.contains(&b'\r')).then_some(line)
}

/// Parses a request line (without its LF): method, path and a supported version.
fn request_line(line: &[u8]) -> Result<(Method, String), BadRequest> {
    let line = strip_cr(line).ok_or(BadRequest::RequestLine)?;
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::RequestLine);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(BadRequest::RequestLine);
    }
    // HTTP-version = "HTTP/" DIGIT "." DIGIT; any major version but 1 is answered 505.
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            if *major != b'1' {
                return Err(BadRequest::Version(
                    String::from_utf8_lossy(&version[5..]).into_owned(),
                ));
            }
        }
        _ => return Err(BadRequest::RequestLine),
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    Ok((method, target_path(target)?))
}

/// The path of a request target: origin form (`/metrics?x`), absolute form
/// (`http://host:8091/metrics`) or `*` (asterisk form, which names no resource here).
fn target_path(target: &[u8]) -> Result<String, BadRequest> {
    let text = std::str::from_utf8(target).map_err(|_| BadRequest::RequestLine)?;
    let path = if text.starts_with('/') || text == "*" {
        text
    } else {
        let lower = text.to_ascii_lowercase();
        let rest = if lower.starts_with("http://") {
            &text["http://".len()..]
        } else if lower.starts_with("https://") {
            &text["https://".len()..]
        } else {
            return Err(BadRequest::RequestLine);
        };
        match rest.find('/') {
            Some(slash) => &rest[slash..],
            None => "/",
        }
    };
    let end = path.find(['?', '#']).unwrap_or(path.len());
    Ok(path[..end].to_string())
}

/// Parses a whole head (as [`HeadScanner`] found it): the request line, then each field line
/// until the blank line.
pub fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let mut lines = head.split(|&b| b == b'\n');
    let (method, path) = request_line(lines.next().unwrap_or_default())?;
    let http_1_0 = head
        .split(|&b| b == b'\n')
        .next()
        .is_some_and(|l| strip_cr(l).is_some_and(|l| l.ends_with(b"HTTP/1.0")));
    let mut hosts = 0usize;
    let mut accept: Option<String> = None;
    for line in lines {
        let line = strip_cr(line).ok_or(BadRequest::HeaderField)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = field(line)?;
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"accept") {
            let value = String::from_utf8_lossy(value);
            accept = Some(match accept {
                None => value.into_owned(),
                Some(before) => format!("{before}, {value}"),
            });
        }
    }
    // RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host field or
    // with more than one.
    if !http_1_0 && hosts != 1 {
        return Err(BadRequest::Host);
    }
    Ok(Request {
        method,
        path,
        accept,
    })
}

/// One field line split into its name and its value without surrounding whitespace. Line
/// folding (a line starting with whitespace), whitespace before the colon, an empty or
/// non-token name and control characters in the value are malformed (RFC 9112 5).
fn field(line: &[u8]) -> Result<(&[u8], &[u8]), BadRequest> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(BadRequest::HeaderField)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(BadRequest::HeaderField);
    }
    if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(BadRequest::HeaderField);
    }
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |e| e + 1);
    Ok((name, &value[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` to a scanner `step` bytes at a time, as a client's writes would arrive.
    fn scan(bytes: &[u8], step: usize) -> Result<Option<usize>, BadRequest> {
        let mut s = HeadScanner::default();
        let mut end = 0;
        loop {
            end = (end + step).min(bytes.len());
            if let Some(len) = s.advance(&bytes[..end])? {
                return Ok(Some(len));
            }
            if end == bytes.len() {
                return Ok(None);
            }
        }
    }

    #[test]
    fn a_head_is_found_however_it_is_split() {
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: text/plain\r\n\r\nBODY";
        for step in [1, 2, 3, 7, head.len()] {
            assert_eq!(scan(head, step), Ok(Some(head.len() - 4)), "step {step}");
        }
        // Lone LF line endings are accepted.
        assert_eq!(scan(b"GET / HTTP/1.0\n\n", 1), Ok(Some(16)));
        // An incomplete head needs more.
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: x\r\n", 1), Ok(None));
    }

    #[test]
    fn garbage_is_refused_before_a_line_ends() {
        // A TLS ClientHello's first bytes: refused at its first byte, no line ending needed.
        assert_eq!(
            scan(&[0x16, 0x03, 0x01, 0x02], 1),
            Err(BadRequest::RequestLine)
        );
        assert_eq!(scan(b"GET /\x00", 1), Err(BadRequest::RequestLine));
        // A request line is judged as soon as it is whole.
        assert_eq!(scan(b"GET /\r\n", 1), Err(BadRequest::RequestLine));
        assert_eq!(
            scan(b"GET  / HTTP/1.1\r\n", 1),
            Err(BadRequest::RequestLine)
        );
        assert_eq!(scan(b"G@T / HTTP/1.1\r\n", 1), Err(BadRequest::RequestLine));
        assert_eq!(
            scan(b"GET metrics HTTP/1.1\r\n", 1),
            Err(BadRequest::RequestLine)
        );
        assert_eq!(
            scan(b"GET / HTTP/1.1\rx\r\n", 1),
            Err(BadRequest::RequestLine)
        );
        assert_eq!(scan(b"GET / FTP/1.1\r\n", 1), Err(BadRequest::RequestLine));
        // The HTTP/2 preface and HTTP/3.0: 505.
        assert_eq!(
            scan(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 1),
            Err(BadRequest::Version("2.0".into()))
        );
        assert_eq!(
            BadRequest::Version("2.0".into()).status(),
            Status::VersionNotSupported
        );
    }

    #[test]
    fn the_head_is_bounded_at_max_head_bytes() {
        // Bound: MAX_HEAD bytes including the blank line; one more is 431.
        let mut head = b"GET / HTTP/1.1\r\nHost: x\r\nX: ".to_vec();
        head.resize(MAX_HEAD - 4, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), MAX_HEAD);
        assert_eq!(scan(&head, 1000), Ok(Some(MAX_HEAD)));
        let mut over = head[..MAX_HEAD - 4].to_vec();
        over.push(b'a');
        over.resize(MAX_HEAD, b'a');
        assert_eq!(scan(&over, 1000), Err(BadRequest::HeadTooLarge));
        assert_eq!(
            BadRequest::HeadTooLarge.status(),
            Status::HeaderFieldsTooLarge
        );
        // A request line alone over the bound: 414.
        let mut line = b"GET /".to_vec();
        line.resize(MAX_HEAD, b'a');
        assert_eq!(scan(&line, 4096), Err(BadRequest::RequestLineTooLong));
        assert_eq!(BadRequest::RequestLineTooLong.status(), Status::UriTooLong);
    }

    #[test]
    fn a_head_parses_into_method_path_and_accept() {
        let r = parse_head(
            b"GET /metrics?name[]=x HTTP/1.1\r\nhost: a\r\nAccept: application/openmetrics-text\r\naccept:  text/plain \r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/metrics");
        assert_eq!(
            r.accept.as_deref(),
            Some("application/openmetrics-text, text/plain")
        );
        let r = parse_head(b"HEAD http://h:8091/ready HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!((r.method, r.path.as_str()), (Method::Head, "/ready"));
        let r = parse_head(b"DELETE / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(
            (r.method, r.path.as_str(), r.accept),
            (Method::Other, "/", None)
        );
        assert_eq!(
            parse_head(b"get / HTTP/1.0\r\n\r\n").unwrap().method,
            Method::Other
        );
    }

    #[test]
    fn malformed_fields_and_hosts_are_400() {
        for head in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n",
            b"GET / HTTP/1.1\r\n: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
        ] {
            let e = parse_head(head).unwrap_err();
            assert_eq!(
                e.status(),
                Status::BadRequest,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // HTTP/1.0 needs no Host.
        assert!(parse_head(b"GET /health HTTP/1.0\r\n\r\n").is_ok());
    }
}
