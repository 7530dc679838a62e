//! The whole platform in one process: `mas dev` and the end-to-end tests start the services
//! through [`stack::start`], with the same `serve` functions and the same environment-variable
//! parsing as each service's own process, so the code that runs in production is the code tested.

pub mod stack;
