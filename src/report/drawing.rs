//! The found architecture as a picture: a space's [`Drawing`] rendered to a self-contained SVG, for
//! `arch.svg` beside `model.onnx`, the HTML report and `pwsnas arch info --svg`.
//!
//! Why it is laid out this way: the renderer knows no space, only cells and chains. A cell's nodes
//! sit on one line in topological order and every edge is an arc above it, as high as the number of
//! nodes it spans, with its op written at the top of the arc. Arcs of the same span start a whole
//! node apart, and the node spacing is wider than the longest label, so their labels cannot meet;
//! arcs of different spans put their labels at least [`SPAN_RISE`] apart in height, more than a
//! label is tall. Fixed connections (DARTS's concatenation into the cell output) hang below the line
//! without labels. A chain is a column of blocks, input at the top, as Netron draws a model. Text is
//! monospace so that its width can be known here, without a font engine; the Chromium test
//! (`tests/arch_drawing.rs`) checks in a real browser that no label overlaps another label or a node
//! and that every text stays inside its box and the picture.
//!
//! Every part carries its meaning as attributes (`class="edge" data-op="sep_conv_3x3"`, `class="node"
//! data-role="input"`, `class="block" data-role="skipped"`), so programs and tests can read a drawing
//! without parsing its geometry.
use pwsnas_models::drawing::{BlockRole, CellDrawing, CellEdge, CellNode, ChainDrawing, NodeRole};
use pwsnas_models::{Arch, Drawing, Op, SpaceKind};
use svg::node::element::path::Data;
use svg::node::element::{Definitions, Group, Marker, Path, Rectangle, Text, Title};
use svg::Document;

/// Font size of labels (px).
const FONT: f64 = 12.0;
/// Width of one monospace character at [`FONT`] (DejaVu Sans Mono advances 0.602 em; rounded up).
const CHAR: f64 = 7.4;
/// Font size and character width of a chain block's detail line.
const SMALL: f64 = 11.0;
const SMALL_CHAR: f64 = 6.8;
const MARGIN: f64 = 16.0;
const NODE_H: f64 = 26.0;
const LABEL_H: f64 = 16.0;
/// How much higher an arc's top is for each further node it spans (more than [`LABEL_H`]).
const SPAN_RISE: f64 = 22.0;
/// Height of the top of an arc spanning one node gap above the nodes' top edge.
const ARC_BASE: f64 = 14.0;
/// How far a fixed connection hangs below the nodes per node spanned.
const HANG: f64 = 12.0;
const TITLE_H: f64 = 22.0;
const BLOCK_H: f64 = 40.0;
const BLOCK_GAP: f64 = 18.0;

/// Edge colours, by first appearance of each op in a drawing (the same op has the same colour in
/// both cells of a DARTS child).
const PALETTE: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

const STYLE: &str = "text { font-family: 'DejaVu Sans Mono', monospace; }";

/// A child of a space drawn, titled with the space and its arch string.
pub fn of_child(kind: &SpaceKind, arch: &Arch) -> String {
    svg(&kind.drawing(arch), &format!("{} {}", kind.name(), kind.format_arch(arch)))
}

/// A child drawn from its text: a space's name, its parameters (`space.json`'s `params`) and the arch
/// string, as `report.json` keeps them.
pub fn of_text(space: &str, params: &serde_json::Value, arch: &str) -> anyhow::Result<String> {
    let kind = SpaceKind::from_params(space, params.clone())?;
    let arch = kind.parse_arch(arch)?;
    Ok(of_child(&kind, &arch))
}

/// The drawing as a standalone SVG document (`width`/`height` in px, scalable through its
/// `viewBox`).
pub fn svg(drawing: &Drawing, title: &str) -> String {
    let (body, width, height) = match drawing {
        Drawing::Cells(cells) => cells_group(cells),
        Drawing::Chain(chain) => chain_group(chain),
    };
    let kind = match drawing {
        Drawing::Cells(_) => "cells",
        Drawing::Chain(_) => "chain",
    };
    Document::new()
        .set("class", "arch-drawing")
        .set("data-kind", kind)
        .set("viewBox", (0, 0, fmt(width), fmt(height)))
        .set("width", fmt(width))
        .set("height", fmt(height))
        .add(Title::new(title))
        .add(svg::node::element::Style::new(STYLE))
        .add(defs())
        .add(Rectangle::new().set("width", "100%").set("height", "100%").set("fill", "#ffffff"))
        .add(body)
        .to_string()
}

fn fmt(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn text_width(s: &str, char_w: f64) -> f64 {
    s.chars().count() as f64 * char_w
}

fn defs() -> Definitions {
    let arrow = |id: &str, colour: &str| {
        Marker::new()
            .set("id", id)
            .set("viewBox", "0 0 10 10")
            .set("refX", 9)
            .set("refY", 5)
            .set("markerWidth", 7)
            .set("markerHeight", 7)
            .set("orient", "auto-start-reverse")
            .add(Path::new().set("d", "M 0 0 L 10 5 L 0 10 z").set("fill", colour))
    };
    Definitions::new().add(arrow("pwsnas-arrow", "#444444")).add(arrow("pwsnas-arrow-fixed", "#999999"))
}

fn text(x: f64, y: f64, s: &str, size: f64) -> Text {
    Text::new(s)
        .set("x", fmt(x))
        .set("y", fmt(y))
        .set("font-size", size)
        .set("text-anchor", "middle")
        .set("dominant-baseline", "central")
}

/// The cells stacked, each under its title; returns the group and its size.
fn cells_group(cells: &[CellDrawing]) -> (Group, f64, f64) {
    let mut ops: Vec<Op> = Vec::new();
    for e in cells.iter().flat_map(|c| c.drawn_edges()) {
        if let Some(op) = e.op {
            if !ops.contains(&op) {
                ops.push(op);
            }
        }
    }
    let colour = |op: Op| PALETTE[ops.iter().position(|o| *o == op).unwrap_or(0) % PALETTE.len()];
    let mut group = Group::new();
    let (mut y, mut width) = (0.0, 0.0_f64);
    for cell in cells {
        let (g, w, h) = cell_group(cell, &colour);
        group = group.add(g.set("transform", format!("translate(0,{})", fmt(y))));
        width = width.max(w);
        y += h;
    }
    (group, width, y)
}

/// Where the parts of a cell go (see the module docs): node centres on one line, its top edge at
/// `top`, `spacing` apart.
struct CellLayout {
    node_w: Vec<f64>,
    widest_node: f64,
    spacing: f64,
    top: f64,
    width: f64,
    height: f64,
}

/// How many node gaps an edge spans.
fn span(e: &CellEdge) -> f64 {
    (e.to - e.from) as f64
}

/// How far above the nodes the top of an arc of `span` gaps is.
fn rise(span: f64) -> f64 {
    ARC_BASE + span * SPAN_RISE
}

impl CellLayout {
    fn of(cell: &CellDrawing) -> CellLayout {
        let node_w: Vec<f64> =
            cell.nodes.iter().map(|n| (text_width(&n.label, CHAR) + 16.0).max(32.0)).collect();
        let widest_node = node_w.iter().copied().fold(0.0, f64::max);
        let widest_label = cell
            .drawn_edges()
            .filter_map(|e| e.op)
            .map(|op| text_width(&op.name(), CHAR) + 6.0)
            .fold(0.0, f64::max);
        let spacing = (widest_label + 14.0).max(widest_node + 24.0).max(60.0);
        let above = cell.drawn_edges().filter(|e| e.op.is_some()).map(|e| rise(span(e))).fold(0.0, f64::max);
        let below = cell.drawn_edges().filter(|e| e.op.is_none()).map(|e| span(e) * HANG).fold(0.0, f64::max);
        let top = TITLE_H + above + LABEL_H / 2.0 + 4.0;
        let width = (2.0 * MARGIN + widest_node + (cell.nodes.len().max(1) - 1) as f64 * spacing)
            .max(2.0 * MARGIN + text_width(&cell.title, CHAR));
        let height = top + NODE_H + below + MARGIN;
        CellLayout { node_w, widest_node, spacing, top, width, height }
    }

    /// The centre of node `n`.
    fn x(&self, n: usize) -> f64 {
        MARGIN + self.widest_node / 2.0 + n as f64 * self.spacing
    }

    /// A quadratic arc from node `from` to node `to` whose middle is `h` above (negative: below)
    /// the line `y`.
    fn arc(&self, e: &CellEdge, y: f64, h: f64) -> Data {
        let (x0, x1) = (self.x(e.from), self.x(e.to));
        Data::new().move_to((fmt(x0), fmt(y))).quadratic_curve_to((
            fmt((x0 + x1) / 2.0),
            fmt(y - 2.0 * h),
            fmt(x1),
            fmt(y),
        ))
    }
}

/// An edge with an op: the arc above the nodes, and its label (drawn later, over every arc).
fn op_edge(l: &CellLayout, e: &CellEdge, op: Op, colour: &str) -> (Path, Group) {
    let h = rise(span(e));
    let arc = Path::new()
        .set("d", l.arc(e, l.top, h))
        .set("fill", "none")
        .set("stroke", colour)
        .set("stroke-width", 1.6)
        .set("marker-end", "url(#pwsnas-arrow)");
    let (mid, w) = ((l.x(e.from) + l.x(e.to)) / 2.0, text_width(&op.name(), CHAR) + 6.0);
    let label = Group::new()
        .set("class", "edge-label")
        .set("data-op", op.name())
        .add(
            Rectangle::new()
                .set("x", fmt(mid - w / 2.0))
                .set("y", fmt(l.top - h - LABEL_H / 2.0))
                .set("width", fmt(w))
                .set("height", LABEL_H)
                .set("rx", 3)
                .set("fill", "#ffffff")
                .set("stroke", colour)
                .set("stroke-width", 0.8),
        )
        .add(text(mid, l.top - h, &op.name(), FONT).set("fill", colour));
    (arc, label)
}

/// A fixed connection: a dashed arc below the nodes, without a label.
fn fixed_edge(l: &CellLayout, e: &CellEdge) -> Path {
    Path::new()
        .set("d", l.arc(e, l.top + NODE_H, -span(e) * HANG))
        .set("fill", "none")
        .set("stroke", "#999999")
        .set("stroke-dasharray", "4 3")
        .set("marker-end", "url(#pwsnas-arrow-fixed)")
}

/// Node `n`: a box with its label.
fn node(l: &CellLayout, n: usize, node: &CellNode) -> Group {
    let (fill, role) = match node.role {
        NodeRole::Input => ("#d9ead3", "input"),
        NodeRole::Inner => ("#dbe8f6", "inner"),
        NodeRole::Output => ("#fde9c9", "output"),
    };
    let w = l.node_w[n];
    Group::new()
        .set("class", "node")
        .set("data-label", node.label.as_str())
        .set("data-role", role)
        .add(
            Rectangle::new()
                .set("x", fmt(l.x(n) - w / 2.0))
                .set("y", fmt(l.top))
                .set("width", fmt(w))
                .set("height", NODE_H)
                .set("rx", 6)
                .set("fill", fill)
                .set("stroke", "#555555"),
        )
        .add(text(l.x(n), l.top + NODE_H / 2.0, &node.label, FONT))
}

/// One cell: title, arcs above the node line, fixed connections below, then the labels and the
/// nodes over them.
fn cell_group(cell: &CellDrawing, colour: &dyn Fn(Op) -> &'static str) -> (Group, f64, f64) {
    let l = CellLayout::of(cell);
    let mut g = Group::new().set("class", "cell").set("data-title", cell.title.as_str()).add(
        text(l.width / 2.0, TITLE_H / 2.0 + 2.0, &cell.title, FONT)
            .set("class", "title")
            .set("font-weight", "bold"),
    );
    let mut labels = Group::new();
    for e in cell.drawn_edges() {
        let edge = Group::new()
            .set("class", "edge")
            .set("data-from", cell.nodes[e.from].label.as_str())
            .set("data-to", cell.nodes[e.to].label.as_str());
        g = g.add(match e.op {
            Some(op) => {
                let (arc, label) = op_edge(&l, e, op, colour(op));
                labels = labels.add(label);
                edge.set("data-op", op.name()).add(arc)
            }
            None => edge.set("data-op", "").add(fixed_edge(&l, e)),
        });
    }
    g = g.add(labels);
    for (n, cell_node) in cell.nodes.iter().enumerate() {
        g = g.add(node(&l, n, cell_node));
    }
    (g, l.width, l.height)
}

/// The blocks as a column, input at the top, an arrow between each two.
fn chain_group(chain: &ChainDrawing) -> (Group, f64, f64) {
    let head = |b: &pwsnas_models::drawing::ChainBlock| format!("{}  {}", b.name, b.label);
    let block_w = chain
        .blocks
        .iter()
        .map(|b| text_width(&head(b), CHAR).max(text_width(&b.detail, SMALL_CHAR)) + 24.0)
        .fold(text_width(&chain.title, CHAR), f64::max);
    let width = block_w + 2.0 * MARGIN;
    let cx = width / 2.0;
    let mut g = Group::new().set("class", "chain").add(
        text(cx, TITLE_H / 2.0 + 2.0, &chain.title, FONT).set("class", "title").set("font-weight", "bold"),
    );
    let mut y = TITLE_H + 4.0;
    for (i, b) in chain.blocks.iter().enumerate() {
        if i > 0 {
            g = g.add(
                Path::new()
                    .set("d", Data::new().move_to((fmt(cx), fmt(y - BLOCK_GAP))).line_to((fmt(cx), fmt(y))))
                    .set("stroke", "#444444")
                    .set("marker-end", "url(#pwsnas-arrow)"),
            );
        }
        let (fill, dash, role) = match b.role {
            BlockRole::Fixed => ("#eeeeee", "none", "fixed"),
            BlockRole::Chosen => ("#dbe8f6", "none", "chosen"),
            BlockRole::Skipped => ("#ffffff", "5 3", "skipped"),
        };
        let mut block = Group::new()
            .set("class", "block")
            .set("data-name", b.name.as_str())
            .set("data-label", b.label.as_str())
            .set("data-role", role)
            .add(
                Rectangle::new()
                    .set("x", fmt(MARGIN))
                    .set("y", fmt(y))
                    .set("width", fmt(block_w))
                    .set("height", BLOCK_H)
                    .set("rx", 6)
                    .set("fill", fill)
                    .set("stroke", "#555555")
                    .set("stroke-dasharray", dash),
            );
        let (line1, line2) = if b.detail.is_empty() { (BLOCK_H / 2.0, None) } else { (13.0, Some(29.0)) };
        block = block.add(text(cx, y + line1, &head(b), FONT));
        if let Some(dy) = line2 {
            block = block.add(text(cx, y + dy, &b.detail, SMALL).set("fill", "#444444"));
        }
        g = g.add(block);
        y += BLOCK_H + BLOCK_GAP;
    }
    (g, width, y - BLOCK_GAP + MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pwsnas_models::Genotype;

    fn count(svg: &str, needle: &str) -> usize {
        svg.matches(needle).count()
    }

    #[test]
    fn an_nb201_cell_draws_its_nodes_and_every_edge_but_none() {
        let kind = SpaceKind::by_name("nb201").unwrap();
        let arch = kind
            .parse_arch(
                "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|avg_pool_3x3~2|",
            )
            .unwrap();
        let svg = svg(&kind.drawing(&arch), "nb201");
        assert!(svg.starts_with("<svg") && svg.contains("xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert_eq!(count(&svg, "class=\"node\""), 4);
        assert_eq!(count(&svg, "class=\"edge\""), 5, "six edges, one of them none");
        assert_eq!(count(&svg, "class=\"edge-label\" data-op=\"nor_conv_3x3\""), 3);
        assert!(!svg.contains("data-op=\"none\""));
        assert_eq!(count(&svg, "data-role=\"input\""), 1);
        assert_eq!(count(&svg, "data-role=\"output\""), 1);
    }

    #[test]
    fn a_darts_genotype_draws_two_cells_with_two_inputs_per_node_and_the_concatenation() {
        let kind = SpaceKind::by_name("darts").unwrap();
        let arch = kind.parse_arch(&Genotype::named("DARTS_V2").unwrap().to_string()).unwrap();
        let svg = svg(&kind.drawing(&arch), "darts");
        assert_eq!(count(&svg, "class=\"cell\""), 2);
        assert!(svg.contains("data-title=\"normal cell\"") && svg.contains("data-title=\"reduction cell\""));
        assert_eq!(count(&svg, "class=\"node\""), 14, "7 nodes a cell");
        // 8 kept edges and 4 concatenation arrows per cell.
        assert_eq!(count(&svg, "class=\"edge-label\""), 16);
        assert_eq!(count(&svg, "class=\"edge\""), 24);
        assert_eq!(count(&svg, "data-op=\"\""), 8);
        assert_eq!(count(&svg, "class=\"edge-label\" data-op=\"sep_conv_3x3\""), 5, "DARTS_V2's normal cell");
    }

    #[test]
    fn a_mobile_child_draws_stem_layers_and_head_with_kernel_expansion_and_skips() {
        let kind = SpaceKind::by_name("mobile").unwrap();
        let layers = kind.choice_point_names().len();
        let mut ops = vec!["mb_k5_e6"; layers];
        ops[1] = "identity";
        let arch = kind.parse_arch(&ops.join(",")).unwrap();
        let svg = svg(&kind.drawing(&arch), "mobile");
        assert_eq!(count(&svg, "class=\"block\""), layers + 3, "stem, layers, head, classifier");
        assert_eq!(count(&svg, "data-role=\"skipped\""), 1);
        assert_eq!(count(&svg, "data-label=\"MBConv k5 e6\""), layers - 1);
        assert!(svg.contains("24→24 ch, stride 1, 32×32"), "{svg}");
    }

    #[test]
    fn text_is_escaped() {
        let chain = ChainDrawing {
            title: "a<b & \"c\"".into(),
            blocks: vec![pwsnas_models::drawing::ChainBlock {
                name: "x<y".into(),
                label: "l".into(),
                detail: "d".into(),
                role: BlockRole::Fixed,
            }],
        };
        let svg = svg(&Drawing::Chain(chain), "t<");
        assert!(svg.contains("a&lt;b &amp;") && svg.contains("x&lt;y") && !svg.contains("x<y"), "{svg}");
    }
}
