//! Country code to continent, the reference seed's `COUNTRY_TO_CONTINENT` (spec §5.6; 162
//! entries; the Middle East, Turkey and the Caucasus count as AS, RU as EU).

const TABLE: &[(&str, &str)] = &[
    (
        "NA",
        "BB BS BZ CA CR CU DO GT HN HT JM MX NI PA PR SV TT US",
    ),
    ("SA", "AR BO BR CL CO EC GY PE PY SR UY VE"),
    (
        "EU",
        "AL AT BA BE BG BY CH CY CZ DE DK EE ES FI FR GB GR HR HU IE IS IT LT LU LV MD ME MK MT \
         NL NO PL PT RO RS RU SE SI SK UA XK",
    ),
    (
        "AS",
        "AE AF AM AZ BD BH CN GE HK ID IL IN IQ IR JO JP KG KH KR KW KZ LA LB LK MM MN MY NP OM \
         PH PK PS QA SA SG SY TH TJ TM TR TW UZ VN YE",
    ),
    (
        "AF",
        "AO BF BW CD CG CI CM CV DZ EG ET GA GH KE LY MA MG ML MU MW MZ NA NE NG RW SC SD SN SO \
         TN TZ UG ZA ZM ZW",
    ),
    ("OC", "AU FJ FM GU NC NZ PF PG SB TO VU WS"),
];

/// The continent code of an ISO-3166 alpha-2 country (case-insensitive), if known.
pub fn continent(country: &str) -> Option<&'static str> {
    let upper = country.to_ascii_uppercase();
    TABLE
        .iter()
        .find(|(_, list)| list.split_whitespace().any(|c| c == upper))
        .map(|(cont, _)| *cont)
}

/// `compute_region_score`: 1.0 for the same country, 0.5 for the same continent, else 0.
pub fn region_score(router: Option<&str>, preferred: Option<&str>) -> f64 {
    let (Some(r), Some(p)) = (router, preferred) else {
        return 0.0;
    };
    if r.is_empty() || p.is_empty() {
        return 0.0;
    }
    if r.eq_ignore_ascii_case(p) {
        return 1.0;
    }
    match (continent(r), continent(p)) {
        (Some(a), Some(b)) if a == b => 0.5,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_reference_counts_and_scores() {
        let n: usize = TABLE
            .iter()
            .map(|(_, l)| l.split_whitespace().count())
            .sum();
        assert_eq!(n, 162);
        assert_eq!(continent("ru"), Some("EU"));
        assert_eq!(continent("TR"), Some("AS"));
        assert_eq!(continent("ZZ"), None);
        assert_eq!(region_score(Some("us"), Some("US")), 1.0);
        assert_eq!(region_score(Some("CA"), Some("US")), 0.5);
        assert_eq!(region_score(Some("DE"), Some("US")), 0.0);
        assert_eq!(region_score(None, Some("US")), 0.0);
    }
}
