module github.com/leadflow/leadflow/services/pipeline

go 1.25.0
