aws_region      = "us-east-1"
recovery_region = "us-west-2"
