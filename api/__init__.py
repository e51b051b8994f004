"""HTTP only: routes per resource, schemas, problem+json errors."""
