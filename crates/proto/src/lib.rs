//! The MAS contract: Rust types and tonic stubs generated from `proto/`, and the encoded
//! descriptor set (with the `google.api.http`, `buf.validate` and `mas.access` options) that the gateway transcodes from
//! and the kit enforces access policies from.

// tonic generates one dispatch function per service, as long as the service has RPCs.
#![allow(clippy::too_many_lines)]

pub mod google {
    pub mod api {
        tonic::include_proto!("google.api");
    }
}

pub mod mas {
    tonic::include_proto!("mas");

    pub mod finance {
        pub mod v1 {
            tonic::include_proto!("mas.finance.v1");
        }
    }

    pub mod identity {
        pub mod v1 {
            tonic::include_proto!("mas.identity.v1");
        }
    }

    pub mod lms {
        pub mod v1 {
            tonic::include_proto!("mas.lms.v1");
        }
    }

    pub mod meetings {
        pub mod v1 {
            tonic::include_proto!("mas.meetings.v1");
        }
    }

    pub mod notifier {
        pub mod v1 {
            tonic::include_proto!("mas.notifier.v1");
        }
    }

    pub mod ops {
        pub mod v1 {
            tonic::include_proto!("mas.ops.v1");
        }
    }
}

pub use google::api::HttpRule;
pub use mas::{AccessPolicy, Capability, HttpOptions, Role};

mod events;
pub use events::{EVENT_OPTION, Event, SERVICE_EVENTS_OPTION, event_rule, service_events};

/// The encoded `FileDescriptorSet` of every proto file, imports included, custom options intact.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// Fully qualified names of our method options, for `prost_reflect` extension look-ups.
pub const HTTP_OPTION: &str = "google.api.http";
pub const ACCESS_OPTION: &str = "mas.access";
pub const HTTP_OPTIONS_OPTION: &str = "mas.http_options";

/// The decoded descriptor pool, built once.
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        // The bytes are produced by our own build script from protox's compiler; a failure here
        // is a build defect, caught by every test that touches the pool.
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the embedded descriptor set decodes")
    })
}

/// The RPC's options decoded from the descriptor, for a method named by its gRPC path
/// (`/mas.identity.v1.Identity/Login`).
pub fn method_by_path(path: &str) -> Option<prost_reflect::MethodDescriptor> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    descriptor_pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == method)
}

/// The access policy declared on a method; an RPC without one is closed to everyone.
pub fn access_policy(method: &prost_reflect::MethodDescriptor) -> AccessPolicy {
    decode_option(method, ACCESS_OPTION).unwrap_or_default()
}

/// The REST mapping declared on a method, if it has one.
pub fn http_rule(method: &prost_reflect::MethodDescriptor) -> Option<HttpRule> {
    decode_option(method, HTTP_OPTION)
}

/// How the gateway shapes the RPC's HTTP exchange (success status, forwarded headers,
/// idempotency); the defaults when none is declared.
pub fn http_options(method: &prost_reflect::MethodDescriptor) -> HttpOptions {
    decode_option(method, HTTP_OPTIONS_OPTION).unwrap_or_default()
}

fn decode_option<T: prost::Message + Default>(
    method: &prost_reflect::MethodDescriptor,
    name: &str,
) -> Option<T> {
    use prost::Message;
    let ext = descriptor_pool().get_extension_by_name(name)?;
    let options = method.options();
    if !options.has_extension(&ext) {
        return None;
    }
    let value = options.get_extension(&ext);
    let msg = value.as_message()?;
    T::decode(msg.encode_to_vec().as_slice()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_options_survive_in_the_descriptor_set() {
        let login = method_by_path("/mas.identity.v1.Identity/Login").expect("Login exists");
        let rule = http_rule(&login).expect("Login has a REST mapping");
        assert_eq!(
            rule.pattern,
            Some(google::api::http_rule::Pattern::Post(
                "/api/auth/login".into()
            ))
        );
        assert_eq!(rule.body, "*");
        assert!(access_policy(&login).public);

        let list = method_by_path("/mas.identity.v1.Identity/ListUsers").expect("ListUsers exists");
        let policy = access_policy(&list);
        assert_eq!(
            policy.roles().collect::<Vec<_>>(),
            [Role::Admin, Role::Superadmin]
        );
        assert!(!policy.public);
    }

    #[test]
    fn internal_rpcs_have_no_rest_mapping() {
        let watch = method_by_path("/mas.identity.v1.Identity/WatchRevocations").expect("exists");
        assert!(http_rule(&watch).is_none());
        assert!(access_policy(&watch).service);
    }
}
