module github.com/leadflow/leadflow/services/scoring

go 1.25.0
