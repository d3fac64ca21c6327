"""A stand-in for WeChat's servers, for tests and demos (`flask wechat ...`)."""

#: What `flask serve` uses when no WeChat account is configured (demo mode).
DEMO_WECHAT = {
    "WECHAT_TOKEN": "demotoken",
    "WECHAT_APP_ID": "wxdemo0000000000",
    "WECHAT_APP_SECRET": "demosecret",
}
DEMO_SIMULATOR_PORT = 9100

#: What `flask serve` and `flask kf ...` use when no 微信客服 account is configured.
DEMO_KF = {
    "KF_TOKEN": "kfdemotoken",
    "KF_ENCODING_AES_KEY": "kfDemoKey0000000000000000000000000000000000",
    "KF_CORP_ID": "wwdemo0000000000",
    "KF_SECRET": "demo-kf-secret",
}
DEMO_KF_SIMULATOR_PORT = 9300
