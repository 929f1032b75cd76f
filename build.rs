//! Compiles the kiosk UI (`ui/main.slint`) into Rust, with the fonts embedded so the binary needs no font files.

fn main() {
    let config = slint_build::CompilerConfiguration::new()
        .with_style("fluent-dark".into())
        .embed_resources(slint_build::EmbedResourcesKind::EmbedFiles);
    if let Err(e) = slint_build::compile_with_config("ui/main.slint", config) {
        // The diagnostics are printed above by the compiler.
        panic!("the kiosk UI does not compile: {e}");
    }
}
