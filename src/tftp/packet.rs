//! TFTP packets on the wire (RFC 1350) with the option extension (RFC 2347)
//! and the options bootherd understands: blksize (RFC 2348), timeout and
//! tsize (RFC 2349), windowsize (RFC 7440).
//!
//! Parsing borrows from the received datagram; encoding writes into a buffer
//! the caller reuses, so neither allocates on a transfer's per-block path.

use std::fmt;

/// Longest file name accepted in a request. Real boot file names are short;
/// this bounds what a hostile request can make us look up and log.
pub const MAX_NAME_LEN: usize = 1024;
/// Most options accepted in one request. The four we know, a few vendor
/// extras (`multicast`, `rollover`, ...) fit with room to spare.
pub const MAX_OPTIONS: usize = 16;
/// RFC 2348's limits on blksize.
pub const MIN_BLKSIZE: u16 = 8;
pub const MAX_BLKSIZE: u16 = 65464;
/// RFC 2349's limits on timeout, in seconds.
pub const MIN_TIMEOUT: u8 = 1;
pub const MAX_TIMEOUT: u8 = 255;
/// The DATA header: opcode and block number.
pub const DATA_HEADER_LEN: usize = 4;

const OP_RRQ: u16 = 1;
const OP_WRQ: u16 = 2;
const OP_DATA: u16 = 3;
const OP_ACK: u16 = 4;
const OP_ERROR: u16 = 5;
const OP_OACK: u16 = 6;

/// Error codes of RFC 1350, plus 8 from RFC 2347.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTransferId = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionNegotiation = 8,
}

impl ErrorCode {
    /// The conventional message that goes with the code.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::NotDefined => "Not defined",
            ErrorCode::FileNotFound => "File not found",
            ErrorCode::AccessViolation => "Access violation",
            ErrorCode::DiskFull => "Disk full or allocation exceeded",
            ErrorCode::IllegalOperation => "Illegal TFTP operation",
            ErrorCode::UnknownTransferId => "Unknown transfer ID",
            ErrorCode::FileExists => "File already exists",
            ErrorCode::NoSuchUser => "No such user",
            ErrorCode::OptionNegotiation => "Option negotiation failed",
        }
    }
}

/// Transfer mode of a request. `mail` (obsolete since RFC 1350) is refused
/// when parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines end in CR LF on the wire; a bare CR is sent as CR NUL.
    Netascii,
    /// Bytes as they are.
    Octet,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
        })
    }
}

/// Why a datagram is not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("too short for a TFTP packet ({0} bytes)")]
    TooShort(usize),
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("the file name is not NUL-terminated")]
    UnterminatedName,
    #[error("the file name is empty")]
    EmptyName,
    #[error("the file name is longer than {MAX_NAME_LEN} bytes")]
    NameTooLong,
    #[error("the file name is not UTF-8")]
    NameNotUtf8,
    #[error("the mode is missing or not NUL-terminated")]
    UnterminatedMode,
    #[error("mode {0:?} is not supported (only netascii and octet)")]
    UnsupportedMode(String),
    #[error("option {0:?} has no NUL-terminated value")]
    OptionWithoutValue(String),
    #[error("an option name is empty")]
    EmptyOptionName,
    #[error("more than {MAX_OPTIONS} options")]
    TooManyOptions,
    #[error("an option is not UTF-8")]
    OptionNotUtf8,
    #[error("the error message is not NUL-terminated")]
    UnterminatedMessage,
}

/// One `name value` pair of a request or an OACK, as sent (names keep their case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub filename: &'a str,
    pub mode: Mode,
    options: [RawOption<'a>; MAX_OPTIONS],
    option_count: usize,
}

impl<'a> Request<'a> {
    /// The options in the order the client sent them.
    pub fn raw_options(&self) -> &[RawOption<'a>] {
        &self.options[..self.option_count]
    }

    /// The options bootherd understands, checked against their RFC ranges.
    pub fn options(&self) -> RequestedOptions {
        RequestedOptions::from_raw(self.raw_options())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request<'a>),
    Wrq(Request<'a>),
    Data { block: u16, payload: &'a [u8] },
    Ack { block: u16 },
    Error { code: u16, message: &'a str },
    Oack { options: Vec<RawOption<'a>> },
}

/// Parses one datagram.
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, ParseError> {
    if datagram.len() < 2 {
        return Err(ParseError::TooShort(datagram.len()));
    }
    let opcode = u16::from_be_bytes([datagram[0], datagram[1]]);
    let body = &datagram[2..];
    match opcode {
        OP_RRQ => parse_request(body).map(Packet::Rrq),
        OP_WRQ => parse_request(body).map(Packet::Wrq),
        OP_DATA | OP_ACK | OP_ERROR if body.len() < 2 => Err(ParseError::TooShort(datagram.len())),
        OP_DATA => Ok(Packet::Data {
            block: u16::from_be_bytes([body[0], body[1]]),
            payload: &body[2..],
        }),
        OP_ACK => Ok(Packet::Ack {
            block: u16::from_be_bytes([body[0], body[1]]),
        }),
        OP_ERROR => {
            let code = u16::from_be_bytes([body[0], body[1]]);
            // Some clients leave out the final NUL; the message is only logged,
            // so take what is there rather than lose the reason.
            let text = &body[2..];
            let text = match text.iter().position(|b| *b == 0) {
                Some(end) => &text[..end],
                None => text,
            };
            let message = std::str::from_utf8(text).unwrap_or("(message not UTF-8)");
            Ok(Packet::Error { code, message })
        }
        OP_OACK => {
            let mut fields = Fields::new(body);
            let mut options = Vec::new();
            while let Some(name) = fields.next_str()? {
                let value = fields
                    .next_str()?
                    .ok_or_else(|| ParseError::OptionWithoutValue(name.to_string()))?;
                options.push(RawOption { name, value });
            }
            Ok(Packet::Oack { options })
        }
        other => Err(ParseError::UnknownOpcode(other)),
    }
}

/// The opcode of a datagram, if it has one: tells a malformed request
/// (worth an ERROR reply) from noise.
pub fn opcode(datagram: &[u8]) -> Option<u16> {
    (datagram.len() >= 2).then(|| u16::from_be_bytes([datagram[0], datagram[1]]))
}

/// True for the opcodes of RRQ and WRQ.
pub fn is_request_opcode(op: u16) -> bool {
    op == OP_RRQ || op == OP_WRQ
}

fn parse_request(body: &[u8]) -> Result<Request<'_>, ParseError> {
    let name_end = body
        .iter()
        .position(|b| *b == 0)
        .ok_or(ParseError::UnterminatedName)?;
    let name = &body[..name_end];
    if name.is_empty() {
        return Err(ParseError::EmptyName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ParseError::NameTooLong);
    }
    let filename = std::str::from_utf8(name).map_err(|_| ParseError::NameNotUtf8)?;
    let mut fields = Fields::new(&body[name_end + 1..]);
    let mode = match fields.next_str() {
        Ok(Some(m)) => m,
        Err(ParseError::OptionNotUtf8) => {
            return Err(ParseError::UnsupportedMode("(not UTF-8)".into()))
        }
        Ok(None) | Err(_) => return Err(ParseError::UnterminatedMode),
    };
    let mode = if mode.eq_ignore_ascii_case("octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case("netascii") {
        Mode::Netascii
    } else {
        return Err(ParseError::UnsupportedMode(mode.to_string()));
    };
    let mut options = [RawOption {
        name: "",
        value: "",
    }; MAX_OPTIONS];
    let mut option_count = 0;
    while let Some(name) = fields.next_str()? {
        if name.is_empty() {
            // Some clients pad requests with NULs after the last option.
            if fields.rest_is_padding() {
                break;
            }
            return Err(ParseError::EmptyOptionName);
        }
        let value = fields
            .next_str()?
            .ok_or_else(|| ParseError::OptionWithoutValue(name.to_string()))?;
        if option_count == MAX_OPTIONS {
            return Err(ParseError::TooManyOptions);
        }
        options[option_count] = RawOption { name, value };
        option_count += 1;
    }
    Ok(Request {
        filename,
        mode,
        options,
        option_count,
    })
}

/// NUL-terminated strings, one after the other.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(rest: &'a [u8]) -> Fields<'a> {
        Fields { rest }
    }

    /// The next string; `None` at the end; an error for bytes after the
    /// last NUL (an unterminated string).
    fn next_str(&mut self) -> Result<Option<&'a str>, ParseError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let Some(end) = self.rest.iter().position(|b| *b == 0) else {
            let partial = String::from_utf8_lossy(self.rest).into_owned();
            return Err(ParseError::OptionWithoutValue(partial));
        };
        let s = std::str::from_utf8(&self.rest[..end]).map_err(|_| ParseError::OptionNotUtf8)?;
        self.rest = &self.rest[end + 1..];
        Ok(Some(s))
    }

    fn rest_is_padding(&self) -> bool {
        self.rest.iter().all(|b| *b == 0)
    }
}

/// What the client asked for, after range checks. An option with a value
/// out of its RFC's range is dropped here (RFC 2347 lets the server leave out
/// options it does not accept) and its reason kept for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestedOptions {
    pub blksize: Option<u16>,
    /// The value the client sent (0 in the usual "tell me the size" probe).
    pub tsize: Option<u64>,
    pub windowsize: Option<u16>,
    /// Seconds.
    pub timeout: Option<u8>,
    /// Options dropped, with why, for the log.
    pub ignored: Vec<String>,
}

impl RequestedOptions {
    fn from_raw(raw: &[RawOption<'_>]) -> RequestedOptions {
        let mut o = RequestedOptions::default();
        for opt in raw {
            let name = opt.name;
            let value = opt.value;
            let known = ["blksize", "tsize", "windowsize", "timeout"]
                .into_iter()
                .find(|k| name.eq_ignore_ascii_case(k));
            let Some(known) = known else {
                o.ignored.push(format!("{name}: not supported"));
                continue;
            };
            let already = match known {
                "blksize" => o.blksize.is_some(),
                "tsize" => o.tsize.is_some(),
                "windowsize" => o.windowsize.is_some(),
                _ => o.timeout.is_some(),
            };
            if already {
                o.ignored
                    .push(format!("{name}: given twice, the first wins"));
                continue;
            }
            let Some(n) = parse_decimal(value) else {
                o.ignored
                    .push(format!("{name} {value:?}: not a decimal number"));
                continue;
            };
            let out_of_range = |o: &mut RequestedOptions, range: &str| {
                o.ignored
                    .push(format!("{name} {value}: outside the valid range {range}"));
            };
            match known {
                "blksize" => match u16::try_from(n) {
                    Ok(b) if (MIN_BLKSIZE..=MAX_BLKSIZE).contains(&b) => o.blksize = Some(b),
                    _ => out_of_range(&mut o, "8-65464"),
                },
                "windowsize" => match u16::try_from(n) {
                    Ok(w) if w >= 1 => o.windowsize = Some(w),
                    _ => out_of_range(&mut o, "1-65535"),
                },
                "timeout" => match u8::try_from(n) {
                    Ok(t) if t >= MIN_TIMEOUT => o.timeout = Some(t),
                    _ => out_of_range(&mut o, "1-255"),
                },
                _ => o.tsize = Some(n),
            }
        }
        o
    }
}

/// A non-negative decimal number of at most 19 digits (fits u64), nothing else:
/// no sign, no spaces, no hex.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

// ---- encoding: into a buffer the caller keeps ----

/// Writes the DATA header for `block` into `buf[..4]`; the payload goes after it.
pub fn put_data_header(buf: &mut [u8], block: u16) {
    buf[..2].copy_from_slice(&OP_DATA.to_be_bytes());
    buf[2..4].copy_from_slice(&block.to_be_bytes());
}

/// A complete DATA packet (for tests and clients; the server fills its
/// buffer in place with `put_data_header`).
pub fn encode_data(buf: &mut Vec<u8>, block: u16, payload: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&OP_DATA.to_be_bytes());
    buf.extend_from_slice(&block.to_be_bytes());
    buf.extend_from_slice(payload);
}

pub fn encode_ack(buf: &mut Vec<u8>, block: u16) {
    buf.clear();
    buf.extend_from_slice(&OP_ACK.to_be_bytes());
    buf.extend_from_slice(&block.to_be_bytes());
}

pub fn encode_error(buf: &mut Vec<u8>, code: ErrorCode, message: &str) {
    buf.clear();
    buf.extend_from_slice(&OP_ERROR.to_be_bytes());
    buf.extend_from_slice(&(code as u16).to_be_bytes());
    // A NUL inside the message would end it early on the client's side.
    buf.extend(message.bytes().filter(|b| *b != 0));
    buf.push(0);
}

/// An OACK with `options` as `(name, value)`; values are formatted without
/// allocating.
pub fn encode_oack(buf: &mut Vec<u8>, options: &[(&str, u64)]) {
    buf.clear();
    buf.extend_from_slice(&OP_OACK.to_be_bytes());
    for (name, value) in options {
        buf.extend_from_slice(name.as_bytes());
        buf.push(0);
        push_decimal(buf, *value);
        buf.push(0);
    }
}

/// A read (`write == false`) or write request.
pub fn encode_request(
    buf: &mut Vec<u8>,
    write: bool,
    filename: &str,
    mode: Mode,
    options: &[(&str, &str)],
) {
    buf.clear();
    let op = if write { OP_WRQ } else { OP_RRQ };
    buf.extend_from_slice(&op.to_be_bytes());
    for s in [filename, &mode.to_string()] {
        buf.extend_from_slice(s.as_bytes());
        buf.push(0);
    }
    for (name, value) in options {
        buf.extend_from_slice(name.as_bytes());
        buf.push(0);
        buf.extend_from_slice(value.as_bytes());
        buf.push(0);
    }
}

fn push_decimal(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq(body: &[u8]) -> Vec<u8> {
        let mut p = vec![0, 1];
        p.extend_from_slice(body);
        p
    }

    /// The checked options of an RRQ with this body.
    fn options_of(body: &[u8]) -> RequestedOptions {
        match parse(&rrq(body)).unwrap() {
            Packet::Rrq(req) => req.options(),
            other => panic!("not an RRQ: {other:?}"),
        }
    }

    #[test]
    fn read_request_with_options_in_any_case() {
        let p = rrq(
            b"pi/start4.elf\0OCTET\0TSize\x000\0BLKSIZE\x001024\0windowSize\x0016\0Timeout\x001\0",
        );
        let Packet::Rrq(req) = parse(&p).unwrap() else {
            panic!("not an RRQ")
        };
        assert_eq!(req.filename, "pi/start4.elf");
        assert_eq!(req.mode, Mode::Octet);
        assert_eq!(req.raw_options().len(), 4);
        assert_eq!(req.raw_options()[0].name, "TSize");
        let o = req.options();
        assert_eq!(o.tsize, Some(0));
        assert_eq!(o.blksize, Some(1024));
        assert_eq!(o.windowsize, Some(16));
        assert_eq!(o.timeout, Some(1));
        assert!(o.ignored.is_empty(), "{:?}", o.ignored);
    }

    #[test]
    fn netascii_and_write_requests() {
        let p = rrq(b"a.txt\0NetAscii\0");
        let Packet::Rrq(req) = parse(&p).unwrap() else {
            panic!()
        };
        assert_eq!(req.mode, Mode::Netascii);
        assert!(req.raw_options().is_empty());
        let Packet::Wrq(req) = parse(b"\0\x02up.bin\0octet\0").unwrap() else {
            panic!()
        };
        assert_eq!(req.filename, "up.bin");
    }

    #[test]
    fn malformed_requests_say_why() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"", ParseError::TooShort(0)),
            (b"\0", ParseError::TooShort(1)),
            (b"\0\x01", ParseError::UnterminatedName),
            (b"\0\x01small.txt", ParseError::UnterminatedName),
            (b"\0\x01\0octet\0", ParseError::EmptyName),
            (b"\0\x01small.txt\0", ParseError::UnterminatedMode),
            (b"\0\x01small.txt\0octet", ParseError::UnterminatedMode),
            (
                b"\0\x01small.txt\0bogusmode\0",
                ParseError::UnsupportedMode("bogusmode".into()),
            ),
            (
                b"\0\x01small.txt\0mail\0",
                ParseError::UnsupportedMode("mail".into()),
            ),
            (
                b"\0\x01small.txt\0octet\0blksize\0",
                ParseError::OptionWithoutValue("blksize".into()),
            ),
            (
                b"\0\x01small.txt\0octet\0blksize\x001468",
                ParseError::OptionWithoutValue("1468".into()),
            ),
            (b"\0\x01\xc3\x28\0octet\0", ParseError::NameNotUtf8),
            (b"\0\x09x\0octet\0", ParseError::UnknownOpcode(9)),
            (b"\0\x04\0", ParseError::TooShort(3)),
        ];
        for (bytes, want) in cases {
            assert_eq!(parse(bytes).unwrap_err(), *want, "{bytes:?}");
        }
        let mut long = vec![0, 1];
        long.extend(std::iter::repeat_n(b'a', MAX_NAME_LEN + 1));
        long.extend_from_slice(b"\0octet\0");
        assert_eq!(parse(&long).unwrap_err(), ParseError::NameTooLong);
        let mut many = rrq(b"small.txt\0octet\0");
        for _ in 0..1000 {
            many.extend_from_slice(b"opt\0");
        }
        assert_eq!(parse(&many).unwrap_err(), ParseError::TooManyOptions);
    }

    #[test]
    fn trailing_nul_padding_is_accepted() {
        assert_eq!(
            options_of(b"x\0octet\0blksize\x00512\0\0\0\0").blksize,
            Some(512)
        );
    }

    #[test]
    fn absurd_option_values_are_dropped_with_a_reason() {
        let p = rrq(b"x\0octet\0blksize\x000\0windowsize\x000\0timeout\x00999\0tsize\x00-5\0");
        let Packet::Rrq(req) = parse(&p).unwrap() else {
            panic!()
        };
        let o = req.options();
        assert_eq!(
            (o.blksize, o.windowsize, o.timeout, o.tsize),
            (None, None, None, None)
        );
        assert_eq!(o.ignored.len(), 4, "{:?}", o.ignored);
        assert!(o.ignored[0].contains("8-65464"), "{:?}", o.ignored);
        assert!(o.ignored[3].contains("not a decimal"), "{:?}", o.ignored);

        for (bytes, blksize) in [
            (&b"x\0octet\0blksize\x0065464\0"[..], Some(65464)),
            (b"x\0octet\0blksize\x0065465\0", None),
            (b"x\0octet\0blksize\x008\0", Some(8)),
            (b"x\0octet\0blksize\x007\0", None),
            (b"x\0octet\0blksize\x0099999999999999999999\0", None),
            (b"x\0octet\0blksize\x00+512\0", None),
            (b"x\0octet\0blksize\x00 512\0", None),
        ] {
            assert_eq!(options_of(bytes).blksize, blksize, "{bytes:?}");
        }
        assert_eq!(
            options_of(b"x\0octet\0blksize\x00600\0BLKSIZE\x00700\0").blksize,
            Some(600)
        );
        assert_eq!(
            options_of(b"x\0octet\0multicast\0\0").ignored,
            vec!["multicast: not supported"]
        );
    }

    #[test]
    fn data_ack_error_oack() {
        assert_eq!(
            parse(b"\0\x03\x01\x02abc").unwrap(),
            Packet::Data {
                block: 0x0102,
                payload: b"abc"
            }
        );
        assert_eq!(
            parse(b"\0\x03\xff\xff").unwrap(),
            Packet::Data {
                block: 65535,
                payload: b""
            }
        );
        assert_eq!(
            parse(b"\0\x04\xff\xfe").unwrap(),
            Packet::Ack { block: 65534 }
        );
        assert_eq!(
            parse(b"\0\x05\0\0Early terminate\0").unwrap(),
            Packet::Error {
                code: 0,
                message: "Early terminate"
            }
        );
        assert_eq!(
            parse(b"\0\x05\0\x01no nul").unwrap(),
            Packet::Error {
                code: 1,
                message: "no nul"
            }
        );
        assert_eq!(
            parse(b"\0\x06blksize\x001468\0tsize\x00100\0").unwrap(),
            Packet::Oack {
                options: vec![
                    RawOption {
                        name: "blksize",
                        value: "1468"
                    },
                    RawOption {
                        name: "tsize",
                        value: "100"
                    }
                ]
            }
        );
        assert!(parse(b"\0\x06blksize\0").is_err());
    }

    #[test]
    fn encodings_are_exact_and_parse_back() {
        let mut buf = Vec::new();
        encode_oack(
            &mut buf,
            &[("tsize", 0), ("blksize", 1468), ("windowsize", 16)],
        );
        assert_eq!(
            buf,
            b"\0\x06tsize\x000\0blksize\x001468\0windowsize\x0016\0"
        );
        encode_error(&mut buf, ErrorCode::AccessViolation, "no\0pe");
        assert_eq!(buf, b"\0\x05\0\x02nope\0");
        encode_ack(&mut buf, 258);
        assert_eq!(buf, b"\0\x04\x01\x02");
        encode_data(&mut buf, 7, b"xy");
        assert_eq!(buf, b"\0\x03\0\x07xy");
        let mut header = [0u8; 4];
        put_data_header(&mut header, 65535);
        assert_eq!(header, [0, 3, 0xff, 0xff]);
        encode_request(
            &mut buf,
            false,
            "boot.bin",
            Mode::Octet,
            &[("blksize", "1468")],
        );
        assert_eq!(buf, b"\0\x01boot.bin\0octet\0blksize\x001468\0");
        encode_oack(&mut buf, &[("tsize", u64::MAX)]);
        assert_eq!(
            parse(&buf).unwrap(),
            Packet::Oack {
                options: vec![RawOption {
                    name: "tsize",
                    value: "18446744073709551615"
                }]
            }
        );
    }
}
