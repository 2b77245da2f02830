#!/usr/bin/python3
"""Prepare kmsd-load.sh's requests: create a key with boto3, then sign one
GenerateDataKey and one Decrypt request with botocore's own SigV4 signer
and write each as a wrk Lua script (RUN/<Operation>.lua). Also an unsigned
request (RUN/Unsigned.lua) for the HTTP + audit ceiling.

Environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ENDPOINT, RUN."""
import json
import os

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ENDPOINT = os.environ["ENDPOINT"]
RUN = os.environ["RUN"]
REGION = "us-east-1"


def lua_string(text):
    return json.dumps(text)  # a JSON string literal is a valid Lua string literal here


def write_script(name, body, headers):
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    for header, value in headers.items():
        lines.append(f"wrk.headers[{lua_string(header)}] = {lua_string(value)}")
    with open(os.path.join(RUN, name + ".lua"), "w") as script:
        script.write("\n".join(lines) + "\n")


def signed(operation, params, creds):
    body = json.dumps(params)
    request = AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "TrentService." + operation,
    })
    SigV4Auth(creds, "kms", REGION).add_auth(request)
    write_script(operation, body, dict(request.headers.items()))


def main():
    kms = boto3.client("kms", endpoint_url=ENDPOINT, region_name=REGION)
    key_id = kms.create_key(Description="kmsd load benchmark")["KeyMetadata"]["KeyId"]
    context = {"kmsfs:volume": "bench", "kmsfs:file": "f"}
    sample = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    creds = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
    signed("GenerateDataKey", {"KeyId": key_id, "KeySpec": "AES_256",
                               "EncryptionContext": context}, creds)
    import base64
    signed("Decrypt", {"CiphertextBlob": base64.b64encode(sample["CiphertextBlob"]).decode(),
                       "EncryptionContext": context}, creds)
    write_script("Unsigned", json.dumps({"KeyId": key_id, "KeySpec": "AES_256"}), {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "TrentService.GenerateDataKey",
    })


if __name__ == "__main__":
    main()
