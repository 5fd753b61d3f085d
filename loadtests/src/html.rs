//! The report as one self-contained HTML page: inline CSS and inline SVG charts
//! drawn here, no script, nothing fetched when it is opened.

use std::fmt::Write as _;

use crate::monitor::{ACTORS_GAUGE, HASH_POOL_GAUGE};
use crate::report::{FullReport, RunSection};

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw as steps (a gauge holds its value until the next report).
    pub step: bool,
    /// Draw a dot at every point too (sparse series).
    pub dots: bool,
}

impl Series {
    pub fn line(name: &str, points: Vec<(f64, f64)>) -> Self {
        Self {
            name: name.to_owned(),
            points,
            step: false,
            dots: false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Shaded x ranges with a label (the runs' windows).
    pub bands: Vec<(f64, f64, String)>,
    pub log_y: bool,
}

/// "Nice" tick values covering [lo, hi], about `n` of them.
pub fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return vec![lo];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut t = first;
    while t <= hi + step * 1e-9 && ticks.len() < 50 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    ticks
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

const W: f64 = 880.0;
const H: f64 = 270.0;
const ML: f64 = 64.0;
const MR: f64 = 16.0;
const MT: f64 = 30.0;
const MB: f64 = 64.0;

impl Chart {
    pub fn render(&self) -> String {
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{}">"#,
            esc(&self.title)
        );
        let _ = write!(
            svg,
            r#"<text x="{ML}" y="18" class="t">{}</text>"#,
            esc(&self.title)
        );
        let pts: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
            .collect();
        if pts.is_empty() {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="n">no data</text></svg>"#,
                W / 2.0 - 30.0,
                H / 2.0
            );
            return svg;
        }
        let mut x0 = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
        let mut x1 = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
        for (a, b, _) in &self.bands {
            x0 = x0.min(*a);
            x1 = x1.max(*b);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let ymax = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let (ylo, yhi, yticks) = if self.log_y {
            let ymin = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let lo = 10f64.powf(ymin.log10().floor());
            let hi = 10f64.powf(ymax.log10().ceil()).max(lo * 10.0);
            let mut ticks = Vec::new();
            let mut t = lo;
            while t <= hi * 1.0001 {
                ticks.push(t);
                t *= 10.0;
            }
            (lo.log10(), hi.log10(), ticks)
        } else {
            let hi = if ymax <= 0.0 { 1.0 } else { ymax * 1.08 };
            let ticks = nice_ticks(0.0, hi, 5);
            let top = ticks.last().copied().unwrap_or(hi).max(hi);
            (0.0, top, ticks)
        };
        let pw = W - ML - MR;
        let ph = H - MT - MB;
        let sx = |x: f64| ML + (x - x0) / (x1 - x0) * pw;
        let ty = |y: f64| if self.log_y { y.max(1e-12).log10() } else { y };
        let sy = |y: f64| MT + ph - (ty(y) - ylo) / (yhi - ylo).max(1e-12) * ph;

        for (i, (a, b, label)) in self.bands.iter().enumerate() {
            let fill = if i % 2 == 0 { "#eef3fb" } else { "#f6f1e8" };
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{MT}" width="{:.1}" height="{ph}" fill="{fill}"/>"#,
                sx(*a),
                (sx(*b) - sx(*a)).max(0.5)
            );
            // A label wider than its band is cut to fit (about 5.5 px a character).
            let room = ((sx(*b) - sx(*a) - 4.0) / 5.5).max(0.0) as usize;
            let shown: String = if label.chars().count() <= room {
                label.clone()
            } else if room >= 2 {
                label.chars().take(room - 1).chain(['…']).collect()
            } else {
                String::new()
            };
            if !shown.is_empty() {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{}" class="b">{}</text>"#,
                    sx(*a) + 2.0,
                    MT + 10.0,
                    esc(&shown)
                );
            }
        }
        for t in &yticks {
            let y = sy(*t);
            let _ = write!(
                svg,
                r##"<line x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" class="yl">{}</text>"##,
                W - MR,
                ML - 6.0,
                y + 4.0,
                fmt_num(*t)
            );
        }
        for t in nice_ticks(x0, x1, 8) {
            let x = sx(t);
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{}" y2="{}" stroke="#999"/><text x="{x:.1}" y="{}" class="xl">{}</text>"##,
                MT + ph,
                MT + ph + 4.0,
                MT + ph + 16.0,
                fmt_num(t)
            );
        }
        let _ = write!(
            svg,
            r##"<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="al">{}</text>"#,
            ML + pw / 2.0,
            MT + ph + 32.0,
            esc(&self.x_label)
        );
        let _ = write!(
            svg,
            r#"<text transform="translate(14 {:.1}) rotate(-90)" class="al">{}</text>"#,
            MT + ph / 2.0,
            esc(&self.y_label)
        );
        let mut legend_x = ML + 8.0;
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut d = String::new();
            let mut prev: Option<(f64, f64)> = None;
            for &(x, y) in &s.points {
                if !x.is_finite() || !y.is_finite() || (self.log_y && y <= 0.0) {
                    prev = None;
                    continue;
                }
                let (px, py) = (sx(x), sy(y));
                match prev {
                    None => {
                        let _ = write!(d, "M{px:.1} {py:.1}");
                    }
                    Some((_, last_y)) if s.step => {
                        let _ = write!(d, "H{px:.1}V{py:.1}");
                        let _ = last_y;
                    }
                    Some(_) => {
                        let _ = write!(d, "L{px:.1} {py:.1}");
                    }
                }
                prev = Some((px, py));
                if s.dots || s.points.len() == 1 {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{px:.1}" cy="{py:.1}" r="2.5" fill="{color}"/>"#
                    );
                }
            }
            if !d.is_empty() {
                let _ = write!(
                    svg,
                    r#"<path d="{d}" fill="none" stroke="{color}" stroke-width="1.6"/>"#
                );
            }
            let lx = legend_x;
            legend_x += 34.0 + 6.5 * s.name.chars().count() as f64;
            let ly = H - 12.0;
            let _ = write!(
                svg,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="4" fill="{color}"/><text x="{:.1}" y="{ly:.1}" class="lg">{}</text>"#,
                ly - 5.0,
                lx + 16.0,
                esc(&s.name)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// A horizontal bar chart of labelled values.
pub fn bars(title: &str, unit: &str, items: &[(String, f64)]) -> String {
    let row = 22.0;
    let h = 40.0 + row * items.len().max(1) as f64;
    let max = items.iter().map(|(_, v)| *v).fold(0.0, f64::max).max(1e-9);
    let label_w = 200.0;
    let bar_w = W - label_w - 120.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="{}"><text x="8" y="18" class="t">{}</text>"#,
        esc(title),
        esc(title)
    );
    if items.is_empty() {
        svg.push_str(r#"<text x="8" y="44" class="n">none</text></svg>"#);
        return svg;
    }
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 30.0 + i as f64 * row;
        let w = (v / max * bar_w).max(1.0);
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" class="yl">{}</text><rect x="{label_w}" y="{y:.1}" width="{w:.1}" height="{:.1}" fill="#d62728"/><text x="{:.1}" y="{:.1}" class="lg">{} {}</text>"##,
            label_w - 6.0,
            y + 14.0,
            esc(label),
            row - 6.0,
            label_w + w + 6.0,
            y + 14.0,
            fmt_num(*v),
            esc(unit)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The latency distribution of a run as columns on log-spaced buckets.
pub fn histogram_chart(run: &RunSection) -> String {
    let hist = &run.details.histogram;
    let title = format!("latency distribution — {}", run.label);
    let h = 230.0;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {h}" width="{W}" height="{h}" role="img" aria-label="{}"><text x="{ML}" y="18" class="t">{}</text>"#,
        esc(&title),
        esc(&title)
    );
    if hist.is_empty() {
        svg.push_str(r#"<text x="400" y="110" class="n">no data</text></svg>"#);
        return svg;
    }
    let pw = W - ML - MR;
    let ph = h - 30.0 - 50.0;
    let max = hist.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let n = hist.len() as f64;
    let bw = pw / n;
    for t in nice_ticks(0.0, max, 4) {
        let y = 30.0 + ph - t / max * ph;
        if y < 30.0 {
            continue;
        }
        let _ = write!(
            svg,
            r##"<line x1="{ML}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" class="yl">{}</text>"##,
            W - MR,
            ML - 6.0,
            y + 4.0,
            fmt_num(t)
        );
    }
    let every = (hist.len() / 12).max(1);
    for (i, b) in hist.iter().enumerate() {
        let x = ML + i as f64 * bw;
        let bh = b.count as f64 / max * ph;
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#1f77b4"><title>{}–{} ms: {}</title></rect>"##,
            x + 0.5,
            30.0 + ph - bh,
            (bw - 1.0).max(0.5),
            b.lo_ms,
            b.hi_ms,
            b.count
        );
        if i % every == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" class="xl">{}</text>"#,
                30.0 + ph + 14.0,
                fmt_num(b.lo_ms)
            );
        }
    }
    let s = &run.summary;
    for (name, v, color) in [
        ("p50", s.p50_ms, "#2ca02c"),
        ("p95", s.p95_ms, "#ff7f0e"),
        ("p99", s.p99_ms, "#d62728"),
    ] {
        if let Some(i) = hist.iter().position(|b| v < b.hi_ms) {
            let b = &hist[i];
            let frac = if b.hi_ms > b.lo_ms {
                ((v - b.lo_ms) / (b.hi_ms - b.lo_ms)).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let x = ML + (i as f64 + frac) * bw;
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="30" y2="{:.1}" stroke="{color}" stroke-dasharray="4 3"/><text x="{:.1}" y="42" class="lg">{name} {}</text>"#,
                30.0 + ph,
                x + 3.0,
                fmt_num(v)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" class="al">latency, ms (log-spaced buckets, successful requests)</text></svg>"#,
        ML + pw / 2.0,
        h - 12.0
    );
    svg
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:940px;color:#222;padding:0 12px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}h3{font-size:15px}\
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}\
th{background:#f4f4f4}td.l,th.l{text-align:left}.note{color:#555}.bad{color:#b00}code{background:#f4f4f4;padding:0 3px}\
svg{display:block;margin:8px 0;max-width:100%;height:auto}svg .t{font:600 13px sans-serif}svg .yl{font:11px sans-serif;text-anchor:end}\
svg .xl{font:11px sans-serif;text-anchor:middle}svg .al{font:12px sans-serif;text-anchor:middle;fill:#444}\
svg .lg{font:11px sans-serif}svg .b{font:10px sans-serif;fill:#667}svg .n{font:13px sans-serif;fill:#999}";

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><tr>");
    for (i, h) in head.iter().enumerate() {
        let _ = write!(
            t,
            "<th{}>{}</th>",
            if i == 0 { " class=\"l\"" } else { "" },
            esc(h)
        );
    }
    t.push_str("</tr>");
    for r in rows {
        t.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let _ = write!(
                t,
                "<td{}>{}</td>",
                if i == 0 { " class=\"l\"" } else { "" },
                esc(c)
            );
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// The whole page.
pub fn render(r: &FullReport) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style></head><body>",
        esc(&r.title)
    );
    let _ = write!(h, "<h1>{}</h1>", esc(&r.title));
    let m = &r.machine;
    let s = &r.setup;
    let _ = write!(
        h,
        "<p class=\"note\">{} · {} cores · {:.1} GiB · load average {} → {} · started at unix time {}</p>",
        esc(&m.cpu_model),
        m.nproc,
        m.mem_total_bytes as f64 / (1024.0 * 1024.0 * 1024.0),
        m.load_before.map_or("?".into(), f2),
        m.load_after.map_or("?".into(), f2),
        r.started_unix
    );
    let _ = write!(h, "<p><code>{}</code></p>", esc(&r.command));
    let mut setup_rows = vec![
        vec!["backend".into(), s.backend.clone()],
        vec!["instances".into(), s.instances.to_string()],
        vec!["targets".into(), s.targets.join(", ")],
        vec!["mail read from".into(), s.mail.clone()],
        vec!["client threads".into(), s.client_threads.to_string()],
        vec![
            "users (with email codes)".into(),
            format!("{} ({})", s.users, s.otp_users),
        ],
    ];
    if let Some(c) = &s.cpu {
        setup_rows.push(vec![
            "CPU per instance".into(),
            format!(
                "{} cores via {} ({}); task scale {}",
                c.cores_per_instance, c.method, c.detail, c.task_scale
            ),
        ]);
    }
    if !s.ready_ms.is_empty() {
        setup_rows.push(vec![
            "ready after".into(),
            s.ready_ms
                .iter()
                .map(|v| format!("{v:.0} ms"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    h.push_str(&table(&["setup", ""], &setup_rows));
    for n in &r.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", esc(n));
    }

    if let Some(limits) = &r.limits {
        h.push_str("<h2>Machine limits (same session)</h2>");
        let mut rows = Vec::new();
        if let Some(a) = &limits.argon2 {
            rows.push(vec![
                "Argon2id hashes/s".into(),
                f1(a.limit_hps),
                format!(
                    "{} threads ÷ {:.1} ms of CPU per hash (m={} KiB t={} p={})",
                    a.threads, a.parallel_cpu_hash_ms, a.m_cost_kib, a.t_cost, a.p_cost
                ),
            ]);
        }
        if let Some(x) = &limits.rs256 {
            rows.push(vec![
                "RS256 signatures/s".into(),
                format!("{:.0}", x.limit_sps),
                format!(
                    "{} threads ÷ {:.0} µs of CPU per signature; one core {:.0}/s",
                    x.threads, x.parallel_cpu_sign_us, x.per_core_sps
                ),
            ]);
        }
        if let Some(hl) = &limits.health {
            rows.push(vec![
                "GET /health req/s".into(),
                format!("{:.0}", hl.ok_rps),
                format!("c={}, p95 {:.2} ms", hl.concurrency, hl.p95_ms),
            ]);
        }
        h.push_str(&table(&["limit", "value", "how"], &rows));
    }

    if let Some(c) = &r.capacity {
        let _ = write!(
            h,
            "<h2>Per-task capacity ({} core, {})</h2>",
            c.task_cores,
            esc(&c.method)
        );
        let rows: Vec<Vec<String>> = c
            .scenarios
            .iter()
            .map(|row| {
                vec![
                    row.scenario.clone(),
                    row.knee_load.map_or("-".into(), |v| format!("{v:.0}")),
                    f1(row.measured_ok_rps),
                    f1(row.per_task_rps),
                    f1(row.per_task_flows),
                    f2(row.p95_ms),
                    row.confirm_rate.map_or("-".into(), f1),
                    row.confirm_p95_ms.map_or("-".into(), f2),
                    row.note.clone(),
                ]
            })
            .collect();
        h.push_str(&table(
            &[
                "scenario",
                "knee workers",
                "measured ok/s",
                "per task ok/s",
                "flows/s",
                "p95 ms",
                "80 % rate",
                "p95 ms there",
                "note",
            ],
            &rows,
        ));
    }

    if let Some(ramp) = &r.ramp {
        let _ = write!(
            h,
            "<h2>Ramp: {} ({} model)</h2>",
            esc(&ramp.scenario),
            esc(&ramp.model)
        );
        match (&ramp.knee, ramp.knee_load, ramp.knee_ok_rps) {
            (Some(_), Some(load), Some(rps)) => {
                let _ = write!(
                    h,
                    "<p>Knee at load {} : {:.1} ok/s, p95 {:.2} ms; the next step: {}.</p>",
                    fmt_num(load),
                    rps,
                    ramp.knee_p95_ms.unwrap_or(0.0),
                    esc(ramp.knee_reason.as_deref().unwrap_or(""))
                );
            }
            _ => h.push_str("<p class=\"bad\">No knee within the ramp: raise its top.</p>"),
        }
        let tp: Vec<(f64, f64)> = ramp.steps.iter().map(|s| (s.load, s.ok_rps)).collect();
        let p95: Vec<(f64, f64)> = ramp.steps.iter().map(|s| (s.load, s.p95_ms)).collect();
        let p99: Vec<(f64, f64)> = ramp.steps.iter().map(|s| (s.load, s.p99_ms)).collect();
        let x_label = if ramp.model == "open" {
            "offered rate, req/s"
        } else {
            "workers"
        };
        h.push_str(
            &Chart {
                title: "throughput by load".into(),
                x_label: x_label.into(),
                y_label: "ok req/s".into(),
                series: vec![Series {
                    dots: true,
                    ..Series::line("ok req/s", tp)
                }],
                ..Chart::default()
            }
            .render(),
        );
        h.push_str(
            &Chart {
                title: "latency by load".into(),
                x_label: x_label.into(),
                y_label: "ms (log)".into(),
                series: vec![
                    Series {
                        dots: true,
                        ..Series::line("p95", p95)
                    },
                    Series {
                        dots: true,
                        ..Series::line("p99", p99)
                    },
                ],
                log_y: true,
                ..Chart::default()
            }
            .render(),
        );
    }

    h.push_str("<h2>Runs</h2>");
    let rows: Vec<Vec<String>> = r
        .runs
        .iter()
        .map(|run| {
            let s = &run.summary;
            vec![
                run.label.clone(),
                f1(s.ok_rps),
                f2(s.p50_ms),
                f2(s.p95_ms),
                f2(s.p99_ms),
                f2(s.max_ms),
                s.errors.to_string(),
                format!("{:.1}", s.duration_s),
                run.throttled_share
                    .map_or("-".into(), |t| format!("{:.0} %", t * 100.0)),
            ]
        })
        .collect();
    h.push_str(&table(
        &[
            "run",
            "ok req/s",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "errors",
            "window s",
            "CPU-throttled periods",
        ],
        &rows,
    ));

    // Over the whole session, on the monitor's clock.
    let bands: Vec<(f64, f64, String)> = r
        .runs
        .iter()
        .map(|run| {
            (
                run.t0_s,
                run.t0_s + run.summary.duration_s,
                run.label.clone(),
            )
        })
        .collect();
    let mut ok = Vec::new();
    let mut err = Vec::new();
    let mut p50 = Vec::new();
    let mut p95 = Vec::new();
    let mut p99 = Vec::new();
    for run in &r.runs {
        // A gap between runs breaks the lines.
        for v in [&mut ok, &mut err, &mut p50, &mut p95, &mut p99] {
            if !v.is_empty() {
                v.push((f64::NAN, f64::NAN));
            }
        }
        for p in &run.details.timeline {
            let t = run.t0_s + p.t_s;
            ok.push((t, p.ok_rps));
            err.push((t, p.error_rps));
            if p.p50_ms > 0.0 {
                p50.push((t, p.p50_ms));
                p95.push((t, p.p95_ms));
                p99.push((t, p.p99_ms));
            }
        }
    }
    h.push_str("<h2>Over time</h2>");
    h.push_str(
        &Chart {
            title: "throughput".into(),
            x_label: "seconds".into(),
            y_label: "req/s".into(),
            series: vec![Series::line("ok/s", ok), Series::line("errors/s", err)],
            bands: bands.clone(),
            log_y: false,
        }
        .render(),
    );
    h.push_str(
        &Chart {
            title: "latency of successful requests".into(),
            x_label: "seconds".into(),
            y_label: "ms (log)".into(),
            series: vec![
                Series::line("p50", p50),
                Series::line("p95", p95),
                Series::line("p99", p99),
            ],
            bands: bands.clone(),
            log_y: true,
        }
        .render(),
    );

    if let Some(server) = &r.server {
        let mut cpu = Vec::new();
        let mut rss = Vec::new();
        for p in &server.processes {
            let name = format!("{} (pid {})", p.name, p.pid);
            cpu.push(Series::line(
                &name,
                p.points
                    .iter()
                    .map(|x| (x.t_s, x.cpu_cores * 100.0))
                    .collect(),
            ));
            rss.push(Series::line(
                &name,
                p.points
                    .iter()
                    .map(|x| (x.t_s, x.rss_bytes as f64 / 1e6))
                    .collect(),
            ));
        }
        if !server.machine_busy.is_empty() {
            cpu.push(Series::line(
                "whole machine",
                server
                    .machine_busy
                    .iter()
                    .map(|(t, b)| (*t, b * 100.0 * r.machine.nproc as f64))
                    .collect(),
            ));
        }
        h.push_str(&format!(
            "<p class=\"note\">CPU in % of one core (100 = one core busy); the machine has {} cores, shared with the load generator.</p>",
            r.machine.nproc
        ));
        h.push_str(
            &Chart {
                title: "server CPU".into(),
                x_label: "seconds".into(),
                y_label: "% of a core".into(),
                series: cpu,
                bands: bands.clone(),
                log_y: false,
            }
            .render(),
        );
        h.push_str(
            &Chart {
                title: "server resident memory".into(),
                x_label: "seconds".into(),
                y_label: "MB".into(),
                series: rss,
                bands: bands.clone(),
                log_y: false,
            }
            .render(),
        );
        let mut gauges = Vec::new();
        for (name, label) in [
            (HASH_POOL_GAUGE, "hash pool in flight"),
            (ACTORS_GAUGE, "live actors"),
        ] {
            if let Some(points) = server.gauges.get(name) {
                let instances: std::collections::BTreeSet<usize> =
                    points.iter().map(|p| p.instance).collect();
                for i in instances {
                    gauges.push(Series {
                        name: format!("{label} #{i}"),
                        points: points
                            .iter()
                            .filter(|p| p.instance == i)
                            .map(|p| (p.t_s, p.value))
                            .collect(),
                        step: true,
                        dots: true,
                    });
                }
            }
        }
        let (hash, actors): (Vec<Series>, Vec<Series>) =
            gauges.into_iter().partition(|s| s.name.starts_with("hash"));
        h.push_str("<p class=\"note\">The server reports these gauges every 10 s (DogStatsD).</p>");
        h.push_str(
            &Chart {
                title: "hash pool: hashes running or waiting".into(),
                x_label: "seconds".into(),
                y_label: "hashes".into(),
                series: hash,
                bands: bands.clone(),
                log_y: false,
            }
            .render(),
        );
        h.push_str(
            &Chart {
                title: "live per-user actors".into(),
                x_label: "seconds".into(),
                y_label: "actors".into(),
                series: actors,
                bands,
                log_y: false,
            }
            .render(),
        );
    }

    for run in &r.runs {
        let _ = write!(h, "<h2>{}</h2>", esc(&run.label));
        let rows: Vec<Vec<String>> = run
            .details
            .ops
            .iter()
            .map(|o| {
                vec![
                    o.op.name().to_owned(),
                    o.requests.to_string(),
                    f1(o.ok_rps),
                    o.errors.to_string(),
                    f2(o.latency.p50_ms),
                    f2(o.latency.p95_ms),
                    f2(o.latency.p99_ms),
                    f2(o.latency.max_ms),
                ]
            })
            .collect();
        h.push_str(&table(
            &[
                "route", "requests", "ok/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms",
            ],
            &rows,
        ));
        if let Some(w) = &run.details.mail_wait {
            let _ = write!(
                h,
                "<p class=\"note\">Waiting for mail after the server answered (not part of any request's latency): p50 {:.2} ms, p95 {:.2} ms over {} mails.</p>",
                w.p50_ms, w.p95_ms, w.count
            );
        }
        if let Some(l) = &run.details.send_lag {
            let _ = write!(
                h,
                "<p class=\"note\">Open model: requests were sent p50 {:.2} ms, p99 {:.2} ms after they were due (latency counts from when they were due).</p>",
                l.p50_ms, l.p99_ms
            );
        }
        h.push_str(&histogram_chart(run));
        let errors: Vec<(String, f64)> = run
            .summary
            .error_counts
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64))
            .collect();
        h.push_str(&bars(
            &format!("errors by status — {}", run.label),
            "",
            &errors,
        ));
    }

    if let Some(redis) = &r.redis {
        h.push_str("<h2>Redis</h2>");
        let mut rows = vec![
            vec!["logical database".into(), redis.db.to_string()],
            vec!["keys at the end".into(), redis.keys_total.to_string()],
            vec![
                "bytes per session key".into(),
                redis.bytes_per_session.map_or("-".into(), |b| {
                    format!(
                        "{b:.0} (MEMORY USAGE of {} keys)",
                        redis.session_keys_sampled
                    )
                }),
            ],
            vec![
                "bytes per lockout key".into(),
                redis.bytes_per_lockout_key.map_or("-".into(), |b| {
                    format!(
                        "{b:.0} (MEMORY USAGE of {} keys)",
                        redis.lockout_keys_sampled
                    )
                }),
            ],
        ];
        for (k, n) in &redis.key_kinds {
            rows.push(vec![format!("keys {k}"), n.to_string()]);
        }
        h.push_str(&table(&["", ""], &rows));
    }
    if let Some(db) = &r.database {
        let _ = write!(
            h,
            "<p>PostgreSQL max_connections {}, pool {} per instance × {} instances.</p>",
            db.max_connections.map_or("?".into(), |v| v.to_string()),
            db.pool_size.map_or("?".into(), |v| v.to_string()),
            db.instances
        );
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::knee::{Knee, Reason};
    use crate::monitor::{GaugePoint, MonitorData, ProcPoint, ProcSeries};
    use crate::report::{
        CapacityRow, CapacitySection, FullReport, Limits, RampSection, RampStep, RedisSizes,
    };
    use crate::run::Model;
    use crate::stats::{self, Op, Report, Tally};
    use std::time::Duration;

    const VOID: [&str; 6] = ["meta", "br", "hr", "img", "input", "link"];

    /// Every element opened is closed, in order (void and self-closed ones aside).
    fn assert_well_formed(html: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(lt) = rest.find('<') {
            rest = &rest[lt + 1..];
            let gt = rest.find('>').expect("unclosed tag");
            let tag = &rest[..gt];
            rest = &rest[gt + 1..];
            if tag.starts_with('!') {
                continue;
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().unwrap_or_default();
                assert_eq!(open, name.trim(), "mismatched </{name}>");
                continue;
            }
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(!name.is_empty(), "odd tag <{tag}>");
            if tag.ends_with('/') || VOID.contains(&name.as_str()) {
                continue;
            }
            stack.push(name);
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    fn sample_report() -> FullReport {
        let mut t = Tally::default();
        for i in 0..500u64 {
            t.record(
                Op::Me,
                Duration::from_millis(i * 4),
                Duration::from_micros(300 + i * 7),
                Ok(()),
            );
        }
        t.record(
            Op::Refresh,
            Duration::from_millis(1000),
            Duration::from_millis(3),
            Err("status_503"),
        );
        let window = Duration::from_secs(2);
        let details = stats::details(&t, window);
        let summary = Report::from_tally("mix <&>", 8, 2, window, t);
        let mut r = FullReport::new("ramp", "suma-auth \"mix\" <run>".into());
        r.setup.backend = "embedded".into();
        r.runs.push(RunSection {
            label: "mix c=8".into(),
            scenario: "mix".into(),
            model: Model::Closed,
            concurrency: 8,
            mix: Some("me=70".into()),
            t0_s: 1.5,
            summary,
            details,
            throttled_share: Some(0.25),
            throttled_s: Some(0.5),
        });
        r.ramp = Some(RampSection {
            scenario: "mix".into(),
            model: "closed".into(),
            steps: vec![
                RampStep {
                    load: 1.0,
                    ok_rps: 100.0,
                    iteration_ok_rps: 100.0,
                    p50_ms: 1.0,
                    p95_ms: 2.0,
                    p99_ms: 3.0,
                    error_share: 0.0,
                    run: 0,
                },
                RampStep {
                    load: 2.0,
                    ok_rps: 101.0,
                    iteration_ok_rps: 101.0,
                    p50_ms: 2.0,
                    p95_ms: 4.0,
                    p99_ms: 6.0,
                    error_share: 0.0,
                    run: 0,
                },
            ],
            knee: Some(Knee {
                index: 0,
                past: 1,
                reason: Reason::ThroughputFlat,
            }),
            knee_load: Some(1.0),
            knee_ok_rps: Some(100.0),
            knee_p95_ms: Some(2.0),
            knee_reason: Some("throughput stopped rising".into()),
            confirm_run: None,
            confirm_share: None,
        });
        r.capacity = Some(CapacitySection {
            task_cores: 0.5,
            method: "cgroup v1 cfs quota".into(),
            task_scale: 1.0,
            scenarios: vec![CapacityRow {
                scenario: "mix".into(),
                knee_load: Some(4.0),
                measured_ok_rps: 100.0,
                p95_ms: 2.0,
                per_task_rps: 100.0,
                per_task_flows: 100.0,
                confirm_rate: Some(80.0),
                confirm_ok_rps: Some(80.0),
                confirm_p95_ms: Some(1.5),
                confirm_p99_ms: Some(2.5),
                confirm_throttled_share: Some(0.3),
                note: String::new(),
            }],
        });
        r.limits = Some(Limits {
            argon2: None,
            rs256: None,
            health: None,
        });
        let mut gauges = std::collections::BTreeMap::new();
        gauges.insert(
            HASH_POOL_GAUGE.to_owned(),
            vec![
                GaugePoint {
                    t_s: 1.0,
                    instance: 0,
                    value: 2.0,
                },
                GaugePoint {
                    t_s: 3.0,
                    instance: 0,
                    value: 0.0,
                },
            ],
        );
        r.server = Some(MonitorData {
            processes: vec![ProcSeries {
                name: "suma-auth #0".into(),
                pid: 42,
                points: vec![
                    ProcPoint {
                        t_s: 1.0,
                        cpu_cores: 0.5,
                        rss_bytes: 30_000_000,
                    },
                    ProcPoint {
                        t_s: 2.0,
                        cpu_cores: 0.9,
                        rss_bytes: 31_000_000,
                    },
                ],
            }],
            machine_busy: vec![(1.0, 0.7), (2.0, 0.9)],
            gauges,
            statsd_packets: 2,
        });
        r.redis = Some(RedisSizes {
            db: 15,
            keys_total: 10,
            session_keys_sampled: 8,
            bytes_per_session: Some(180.0),
            lockout_keys_sampled: 2,
            bytes_per_lockout_key: Some(120.0),
            key_kinds: vec![("suma-auth:session".into(), 8)],
        });
        r
    }

    #[test]
    fn the_page_is_self_contained_and_well_formed() {
        let html = render(&sample_report());
        assert!(html.starts_with("<!DOCTYPE html>\n<html"));
        assert!(html.trim_end().ends_with("</html>"));
        assert_well_formed(&html);
        // Nothing is fetched when it is opened: no script, no external resource.
        let lower = html.to_ascii_lowercase();
        for banned in [
            "<script", " src=", "href=", "@import", "url(", "<iframe", "<link",
        ] {
            assert!(!lower.contains(banned), "{banned}");
        }
        // The only URL is the SVG namespace (an identifier, not fetched).
        let urls = lower.matches("http://").count() + lower.matches("https://").count();
        assert_eq!(urls, lower.matches("http://www.w3.org/2000/svg").count());
        // Text is escaped.
        assert!(html.contains("suma-auth &quot;mix&quot; &lt;run&gt;"));
        assert!(!html.contains("<run>"));
        // Every section is drawn.
        for part in [
            "throughput",
            "latency of successful requests",
            "latency distribution",
            "errors by status",
            "status_503",
            "server CPU",
            "server resident memory",
            "hash pool",
            "live per-user actors",
            "Per-task capacity",
            "Knee at load 1",
            "bytes per session key",
        ] {
            assert!(html.contains(part), "{part}");
        }
        assert!(html.matches("<svg").count() >= 8);
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    }

    #[test]
    fn an_empty_report_still_renders() {
        let r = FullReport::new("run", "empty".into());
        let html = render(&r);
        assert_well_formed(&html);
        assert!(html.contains("no data"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(
            nice_ticks(0.0, 10.0, 5),
            vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        );
        assert_eq!(
            nice_ticks(0.0, 1000.0, 4),
            vec![0.0, 250.0, 500.0, 750.0, 1000.0]
        );
        assert_eq!(nice_ticks(5.0, 5.0, 4), vec![5.0]);
        assert_eq!(
            esc("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}
