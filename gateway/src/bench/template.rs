//! Topic and client id templates, as emqtt-bench writes them: `%i` is the client's index
//! (`--startnumber` + its position), `%c` its client id.

/// Expands `%i` and `%c` in `template`; any other `%` is kept as written.
pub(crate) fn expand(template: &str, index: u64, client_id: &str) -> String {
    let mut out = String::with_capacity(template.len() + client_id.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.peek() {
                Some('i') => {
                    chars.next();
                    out.push_str(&index.to_string());
                    continue;
                }
                Some('c') => {
                    chars.next();
                    out.push_str(client_id);
                    continue;
                }
                _ => {}
            }
        }
        out.push(c);
    }
    out
}

/// The client id of client `index` in role `role` (`pub`, `sub`, `conn`): `{prefix}_{role}_{index}`.
pub(crate) fn client_id(prefix: &str, role: &str, index: u64) -> String {
    format!("{prefix}_{role}_{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_client_id_are_substituted() {
        assert_eq!(expand("bench/%i", 7, "c"), "bench/7");
        assert_eq!(expand("t/%c/x/%i", 3, "tb_pub_3"), "t/tb_pub_3/x/3");
        assert_eq!(expand("plain/topic", 1, "c"), "plain/topic");
    }

    #[test]
    fn other_percents_stay() {
        assert_eq!(expand("100%", 1, "c"), "100%");
        assert_eq!(expand("%d/%%i", 2, "c"), "%d/%2");
        assert_eq!(expand("%", 2, "c"), "%");
    }

    #[test]
    fn client_ids_name_role_and_index() {
        assert_eq!(client_id("tb42", "pub", 0), "tb42_pub_0");
    }
}
