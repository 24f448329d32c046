"""The config's own checks: the typed schema that Hydra composes against (``schema``), the ranges of its numbers
(``validation``) and the resolvers its YAML calls (``resolvers``)."""
