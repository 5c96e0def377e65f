module github.com/leadflow/leadflow/services/platform

go 1.25.0
