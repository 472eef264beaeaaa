[
  inputs: ["{mix,.formatter}.exs", "{config,lib,test,bench,examples}/**/*.{ex,exs}"],
  locals_without_parens: [
    input: 2,
    input: 3,
    output: 2,
    output: 3,
    predictor: 2,
    predictor: 3,
    param: 2,
    param: 3,
    field: 2,
    field: 3
  ]
]
