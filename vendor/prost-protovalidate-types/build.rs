// Patched for MAS (vendor/patches/prost-protovalidate-types): the descriptor set is compiled with
// protox instead of protoc, so the workspace builds with no protoc on the machine; the
// `ReflectMessage` derives that prost-reflect-build would add are added here from that set.
use std::env;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "proto";
    let files = &["buf/validate/validate.proto"];

    for f in files {
        println!("cargo:rerun-if-changed={proto_dir}/{f}");
    }

    let base_path = PathBuf::from(
        env::var("OUT_DIR")
            .map_err(|err| format!("missing OUT_DIR environment variable: {err}"))?,
    );
    let descriptor_path = base_path.join("file_descriptor_set.bin");

    let fds = protox::compile(files, [proto_dir])?;
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;

    let mut config = prost_build::Config::new();
    #[cfg(feature = "reflect")]
    for file in &fds.file {
        let package = file.package();
        for message in &file.message_type {
            reflect_attributes(&mut config, package, message);
        }
    }
    config.compile_fds(fds)?;
    Ok(())
}

/// What prost-reflect-build's `descriptor_pool("DESCRIPTOR_POOL")` adds: a `ReflectMessage`
/// derive naming the message and the pool, for every message and nested message.
#[cfg(feature = "reflect")]
fn reflect_attributes(
    config: &mut prost_build::Config,
    prefix: &str,
    message: &prost_types::DescriptorProto,
) {
    let full_name = format!("{prefix}.{}", message.name());
    config.type_attribute(
        &full_name,
        "#[derive(::prost_reflect::ReflectMessage)]",
    );
    config.type_attribute(
        &full_name,
        format!(
            "#[prost_reflect(descriptor_pool = \"DESCRIPTOR_POOL\", message_name = \"{full_name}\")]"
        ),
    );
    for nested in &message.nested_type {
        if nested.options.as_ref().is_some_and(|o| o.map_entry()) {
            continue;
        }
        reflect_attributes(config, &full_name, nested);
    }
}
