module github.com/leadflow/leadflow/services/reporting

go 1.25.0
