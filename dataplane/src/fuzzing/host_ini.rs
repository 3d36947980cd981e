//! Fuzz entry point for the host.ini parser (an operator's file, but untrusted input).

use crate::relay::host_ini;

/// Parses arbitrary bytes as host.ini; whatever parses must write back (each group as its
/// host.ini line) to text that parses to the same groups.
pub fn host_ini(data: &[u8]) {
    let Ok(groups) = host_ini::parse(data, "fuzz") else {
        return;
    };
    let text: String = groups.iter().map(|g| format!("{g}\n")).collect();
    let again = match host_ini::parse(text.as_bytes(), "fuzz") {
        Ok(again) => again,
        Err(e) => panic!("host.ini written back does not parse: {e}\n{text}"),
    };
    assert_eq!(groups.len(), again.len());
    for (a, b) in groups.iter().zip(&again) {
        assert_eq!(
            (&a.label, &a.primary, &a.secondary, &a.app, &a.instance),
            (&b.label, &b.primary, &b.secondary, &b.app, &b.instance),
            "host.ini group changed when written back"
        );
    }
}
