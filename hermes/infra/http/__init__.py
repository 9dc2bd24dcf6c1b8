"""infra http package."""
