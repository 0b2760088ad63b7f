//! ferrokube's own CustomResourceDefinitions (types and generated YAML). None are defined yet: the
//! components that need them (PodGroups for the scheduler) add them here.
