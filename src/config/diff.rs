//! The keys two config files differ in, which a reload names.

/// The keys (`section.key`, or a whole array section such as `routes`) whose values differ
/// between two config files, in file order of the sections.
pub fn changed_keys(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    let mut sections: Vec<&String> = old.keys().chain(new.keys()).collect();
    sections.sort();
    sections.dedup();
    let empty = toml::Value::Table(toml::Table::new());
    for section in sections {
        let (a, b) = (old.get(section), new.get(section));
        // A section present on one side only: its keys changed, one by one.
        let either_table =
            matches!(a, Some(toml::Value::Table(_))) || matches!(b, Some(toml::Value::Table(_)));
        let (a, b) = if either_table {
            (a.or(Some(&empty)), b.or(Some(&empty)))
        } else {
            (a, b)
        };
        match (a, b) {
            (Some(toml::Value::Table(a)), Some(toml::Value::Table(b))) => {
                let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    if a.get(k) != b.get(k) {
                        out.push(format!("{section}.{k}"));
                    }
                }
            }
            (a, b) if a != b => out.push(section.clone()),
            _ => {}
        }
    }
    out
}
