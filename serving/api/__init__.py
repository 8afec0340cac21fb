"""HTTP: the app factory, dependencies, auth, middleware, OpenAPI and routes."""
