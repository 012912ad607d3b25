module github.com/servingkit/servingkit/examples

go 1.25

replace github.com/servingkit/servingkit => ../

require (
	github.com/servingkit/servingkit v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.11.1
	go.yaml.in/yaml/v3 v3.0.4
	golang.org/x/sync v0.19.0
	sigs.k8s.io/yaml v1.6.0
)

require (
	github.com/benbjohnson/clock v1.3.5 // indirect
	github.com/davecgh/go-spew v1.1.1 // indirect
	github.com/pmezard/go-difflib v1.0.0 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
