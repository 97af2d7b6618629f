//! The chat protocol's lines: what a user types, and what the room says.
//!
//! LF-terminated UTF-8 lines. A line from a user is a command if it starts
//! with `/` (`//` escapes a line that should start with one), else
//! something said to the room. The room's lines are plain text:
//! `you are <name>`, `present: <names>`, `<name> arrived`,
//! `<name> says '<text>'` (every `'` in the text doubled, as Smalltalk
//! prints strings), `<old> is now known as <new>`, `<name> left` or
//! `<name> left (<reason>)`, `error: <reason>` and `server shutting down`.

use std::fmt::Write;

/// What a load balancer's health check (a PROXY `LOCAL` connection) is
/// told, instead of joining the room.
pub const HEALTH_OK: &str = "ok chat-server";

/// Longest name a user may take with `/nick`.
pub const MAX_NAME: usize = 32;

/// What a user's line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// Say this to the room.
    Say(&'a str),
    /// `/nick NAME`: take a new name (checked by [`valid_name`] and by the
    /// room, for names taken).
    Nick(&'a str),
    /// `/who`: the users present.
    Who,
    /// `/quit`: leave.
    Quit,
    /// A malformed or unknown command: the error line's text.
    Error(String),
}

/// Reads a user's line. A trailing CR (from telnet) is dropped first.
pub fn parse(line: &str) -> Input<'_> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if !is_clean(line) {
        // Terminal escapes and the like would reach every user's screen.
        return Input::Error("control characters are not allowed (tab is)".into());
    }
    let Some(command) = line.strip_prefix('/') else {
        return Input::Say(line);
    };
    if command.starts_with('/') {
        return Input::Say(command);
    }
    let (word, rest) = match command.split_once(' ') {
        Some((w, r)) => (w, r.trim()),
        None => (command, ""),
    };
    match word {
        "nick" if rest.is_empty() => Input::Error("usage: /nick NAME".into()),
        "nick" => match valid_name(rest) {
            Ok(()) => Input::Nick(rest),
            Err(why) => Input::Error(why.into()),
        },
        "who" => Input::Who,
        "quit" => Input::Quit,
        _ => Input::Error(format!("unknown command /{word}")),
    }
}

/// True if `text` has no control character other than tab (what a user's
/// line may hold).
pub fn is_clean(text: &str) -> bool {
    !text.chars().any(is_control)
}

/// A control character other than tab: C0, DEL and C1.
fn is_control(c: char) -> bool {
    c != '\t' && c.is_control()
}

/// Checks a name's form: 1 to [`MAX_NAME`] letters, digits, `_` or `-`
/// (letters and digits of any script; counted in characters).
pub fn valid_name(name: &str) -> Result<(), &'static str> {
    const WHY: &str = "a name is 1 to 32 letters, digits, '_' or '-'";
    let mut count = 0;
    for c in name.chars() {
        count += 1;
        if count > MAX_NAME || !(c.is_alphanumeric() || c == '_' || c == '-') {
            return Err(WHY);
        }
    }
    if count == 0 {
        return Err(WHY);
    }
    Ok(())
}

/// `<name> says '<text>'`, every `'` in the text doubled.
pub fn says(name: &str, text: &str) -> String {
    let mut line = String::with_capacity(name.len() + text.len() + 8);
    line.push_str(name);
    line.push_str(" says '");
    for (i, part) in text.split('\'').enumerate() {
        if i > 0 {
            line.push_str("''");
        }
        line.push_str(part);
    }
    line.push('\'');
    line
}

/// `you are <name>`: a newcomer's (or a renamed user's) own name.
pub fn you_are(name: &str) -> String {
    format!("you are {name}")
}

/// `<name> arrived`.
pub fn arrived(name: &str) -> String {
    format!("{name} arrived")
}

/// `<old> is now known as <new>`.
pub fn now_known_as(old: &str, new: &str) -> String {
    format!("{old} is now known as {new}")
}

/// `present:` followed by each name, separated by single spaces.
pub fn present<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = String::from("present:");
    for name in names {
        line.push(' ');
        line.push_str(name);
    }
    line
}

/// `<name> left`, or `<name> left (<reason>)`.
pub fn left(name: &str, reason: Option<&str>) -> String {
    let mut line = format!("{name} left");
    if let Some(r) = reason {
        let _ = write!(line, " ({r})");
    }
    line
}

/// `error: <reason>`.
pub fn error(reason: &str) -> String {
    format!("error: {reason}")
}

/// The line every user gets when the server stops.
pub const SHUTTING_DOWN: &str = "server shutting down";

/// The line every user gets when the room fails (the users are
/// disconnected; the supervisor starts a new, empty room).
pub const ROOM_FAILED: &str = "error: the chat room failed; please reconnect";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_doubled_as_smalltalk_prints_strings() {
        assert_eq!(says("user1", "Hello there!"), "user1 says 'Hello there!'");
        assert_eq!(says("u", "it's"), "u says 'it''s'");
        assert_eq!(says("u", "''"), "u says ''''''");
        assert_eq!(says("u", ""), "u says ''");
    }

    #[test]
    fn commands_and_escapes() {
        assert_eq!(parse("hello"), Input::Say("hello"));
        assert_eq!(parse("hello\r"), Input::Say("hello"));
        assert_eq!(parse("//slash"), Input::Say("/slash"));
        assert_eq!(parse("/who"), Input::Who);
        assert_eq!(parse("/quit\r"), Input::Quit);
        assert_eq!(parse("/nick bob"), Input::Nick("bob"));
        assert_eq!(parse("/nick  bob "), Input::Nick("bob"));
        assert_eq!(parse("/nick"), Input::Error("usage: /nick NAME".into()));
        assert!(matches!(parse("/nick b!b"), Input::Error(_)));
        assert!(matches!(
            parse(&format!("/nick {}", "x".repeat(33))),
            Input::Error(_)
        ));
        assert_eq!(
            parse(&format!("/nick {}", "x".repeat(32))),
            Input::Nick(&"x".repeat(32))
        );
        assert_eq!(
            parse("/dance now"),
            Input::Error("unknown command /dance".into())
        );
        assert_eq!(parse("/"), Input::Error("unknown command /".into()));
        assert_eq!(parse("/nick Zoë"), Input::Nick("Zoë"));
        assert_eq!(parse("/nick 東京"), Input::Nick("東京"));
        assert!(matches!(
            parse(&format!("/nick {}", "é".repeat(33))),
            Input::Error(_)
        ));
        assert_eq!(
            parse(&format!("/nick {}", "é".repeat(32))),
            Input::Nick(&"é".repeat(32))
        );
    }

    #[test]
    fn control_characters_are_refused_but_tab_is_fine() {
        assert!(matches!(parse("red \u{1b}[31m alert"), Input::Error(_)));
        assert!(matches!(parse("bell\u{7}"), Input::Error(_)));
        assert!(matches!(parse("mid\rline"), Input::Error(_)));
        assert!(matches!(parse("c1 \u{9b}"), Input::Error(_)));
        assert_eq!(parse("a\tb"), Input::Say("a\tb"));
        assert_eq!(parse("telnet\r"), Input::Say("telnet"));
    }

    #[test]
    fn present_and_left_lines() {
        assert_eq!(present([]), "present:");
        assert_eq!(present(["a", "b"]), "present: a b");
        assert_eq!(left("a", None), "a left");
        assert_eq!(left("a", Some("reset")), "a left (reset)");
    }
}
