//! Compiles the kiosk UI (`ui/main.slint`) into Rust, with the fonts embedded so the binary needs no font files.
//! Debug builds (and so the tests) also carry Slint's element debug info, which the screenshot tests query.

fn main() {
    let debug = std::env::var("PROFILE").is_ok_and(|p| p == "debug");
    let config = slint_build::CompilerConfiguration::new()
        .with_style("fluent-dark".into())
        .with_debug_info(debug)
        .embed_resources(slint_build::EmbedResourcesKind::EmbedFiles);
    if let Err(e) = slint_build::compile_with_config("ui/main.slint", config) {
        // The diagnostics are printed above by the compiler.
        panic!("the kiosk UI does not compile: {e}");
    }
}
